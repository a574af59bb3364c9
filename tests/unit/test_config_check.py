"""`config check`'s knowledge: the kiosk's languages as the agent knows them (it may not
import the kiosk) are the catalogues the kiosk has; every problem of a file is found, not
only the first; an O2O_EDGE_ variable that sets nothing is named."""

from __future__ import annotations

from pathlib import Path

from agent.config_load import OTHER_ENV, config_problems, unknown_env
from agent.contracts.settings_file import env_var
from agent.contracts.shared_settings import KIOSK_LANGUAGES

ROOT = Path(__file__).resolve().parents[2]


def test_the_agents_list_of_kiosk_languages_is_the_kiosks_catalogues() -> None:
    catalogues = sorted(p.stem for p in (ROOT / "kiosk" / "i18n").glob("*.json"))
    assert sorted(KIOSK_LANGUAGES) == catalogues, (
        "a catalogue was added or removed in kiosk/i18n: update KIOSK_LANGUAGES in "
        "agent/contracts/shared_settings.py"
    )


def test_every_problem_of_the_file_is_found(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kiosk]\nlanguage = "fr"\nidle_s = 1\n[ble]\nmode = "loud"\n[nope]\n')
    problems = config_problems(str(path), {})
    assert len(problems) == 4, problems
    assert [p.split(": ", 1)[0] for p in problems] == [str(path)] * 4
    # the environment's value is the one that counts: the file's bad one is not reported
    fixed = config_problems(
        str(path), {env_var("kiosk", "language"): "de", env_var("kiosk", "idle_s"): "60"}
    )
    assert len(fixed) == 2 and not any("language" in p or "idle_s" in p for p in fixed)
    path.write_text('[kiosk]\nlanguage = "es"\n')
    assert config_problems(str(path), {}) == []
    # all fine one by one, wrong together: the cross checks still speak
    path.write_text("[kiosk]\nidle_s = 20\nidle_warning_s = 30\n")
    (problem,) = config_problems(str(path), {})
    assert "idle_warning_s must be less than idle_s" in problem


def test_stray_variables_are_named_with_the_closest_setting() -> None:
    env = {
        "O2O_EDGE_MQTT_URL": "mqtt://x:1",
        "O2O_EDGE_OUTBOX_MAXBYTES": "5",
        "O2O_EDGE_NOTHING_LIKE_IT": "1",
        "HOME": "/root",
        **dict.fromkeys(OTHER_ENV, "x"),
    }
    assert unknown_env(env) == [
        "environment O2O_EDGE_NOTHING_LIKE_IT is not a setting and is ignored",
        "environment O2O_EDGE_OUTBOX_MAXBYTES is not a setting and is ignored; did you mean "
        "O2O_EDGE_OUTBOX_MAX_BYTES?",
    ]
