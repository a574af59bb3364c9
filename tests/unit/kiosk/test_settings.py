"""The kiosk's own settings (kiosk/settings.py): the [kiosk], [bus] and [device] tables of the
store's configuration file, read as the agent reads them, and nothing else kept — the
browser-facing kiosk process never loads the agent's configuration or its MQTT password."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, load_config
from agent.errors import ConfigError
from kiosk.errors import KioskError, KioskReason
from kiosk.settings import KioskSettings, load_settings

STORE_FILE = """
[device]
store = "store-7"
id = "kiosk-2"

[mqtt]
url = "mqtts://broker.example:8883"
username = "edge"
password = "s3cret-pass"

[bus]
socket = "{sock}"

[kiosk]
language = "de"
idle_s = 60
staff_pin_hash = "scrypt$abc"
serve = "127.0.0.1:9000"
scale = 1.25
"""


def store_file(tmp_path: Path, text: str = STORE_FILE) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text.replace("{sock}", str(tmp_path / "agent.sock")))
    return path


def test_the_shared_tables_are_the_agent_s_own() -> None:
    # one schema for both (agent/contracts/shared_settings.py): a copy drifts
    agents = typing.get_type_hints(Config)
    ours = typing.get_type_hints(KioskSettings)
    for table in ("kiosk", "bus", "device"):
        assert ours[table] is agents[table], table
    assert KioskSettings().device.id == Config().device.id  # a stable default name


def test_reads_what_the_agent_reads_and_keeps_no_secret(tmp_path: Path) -> None:
    path = store_file(tmp_path)
    ours = load_settings(str(path))
    agents = load_config(str(path))
    assert dataclasses.asdict(ours.kiosk) == dataclasses.asdict(agents.kiosk)
    assert ours.bus.socket == agents.bus.socket == tmp_path / "agent.sock"
    assert (ours.device.store, ours.device.id) == ("store-7", "kiosk-2")
    assert ours.kiosk.language == "de" and ours.kiosk.idle_s == 60.0
    assert "s3cret-pass" not in repr(ours) and "broker.example" not in repr(ours)


def test_the_environment_overrides_as_for_the_agent(tmp_path: Path) -> None:
    path = store_file(tmp_path)
    env = {"O2O_EDGE_KIOSK_LANGUAGE": "es", "O2O_EDGE_KIOSK_SERVE_SESSIONS": "3",
           "O2O_EDGE_BUS_SOCKET": str(tmp_path / "other.sock")}
    s = load_settings(str(path), env=env)
    assert (s.kiosk.language, s.kiosk.serve_sessions) == ("es", 3)
    assert s.bus.socket == tmp_path / "other.sock"
    assert load_settings(None, env={"O2O_EDGE_CONFIG": str(path)}).device.store == "store-7"


@pytest.mark.parametrize("bad", [
    '[kiosk]\nlanguage = "english"\n',
    "[kiosk]\nidle_s = 5\n",
    '[kiosk]\nstaff_pin_hash = "1234"\n',
    '[kiosk]\nserve = "localhost"\n',
    "[kiosk]\nserve_sessions = 40\n",
    "[kiosk]\nlangauge = 'de'\n",
    '[kiosk]\nidle_s = "45"\n',
    "[kiosk]\nidle_warning_s = 60\nidle_s = 30\n",
    '[device]\nstore = "a b"\n',
    "kiosk = 3\n",
    "[kiosk\n",
    # the kiosk kept its own copy of these checks, and they had drifted from the agent's:
    '[device]\nid = "-kiosk"\n',  # a name must start with a letter or a digit
    '[kiosk]\ncontent_dir = "/srv/a\\u2028b"\n',  # a line separator is a control character
    '[kiosk]\ncontent_dir = "/srv/a\\u0085b"\n',
    "[kiosk]\nscale = 3.0\n",  # the agent said it in other words
    '[kiosk]\nlanguage = "english"\n[device]\nid = "a b"\n',  # the same first mistake named
])
def test_a_mistake_reads_as_the_agent_s_config_check_says_it(tmp_path: Path, bad: str) -> None:
    path = store_file(tmp_path, bad)
    with pytest.raises(ConfigError) as agent_err:
        load_config(str(path))
    with pytest.raises(KioskError) as kiosk_err:
        load_settings(str(path))
    assert kiosk_err.value.reason is KioskReason.SETTINGS
    assert str(kiosk_err.value) == str(agent_err.value)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "config file not found"),
    (lambda p: p.write_bytes(b"[kiosk]\nlanguage = '\xe9'\n"), "line 2: not UTF-8 text"),
    (lambda p: os.mkfifo(p), "is not a regular file"),
    (lambda p: p.write_bytes(b"#" * (1024 * 1024 + 1)), "too big for a config file"),
])
def test_a_file_that_is_not_a_config_file_is_the_agent_s_one_line(
        tmp_path: Path, make: Any, words: str) -> None:
    path = tmp_path / "config.toml"
    make(path)
    with pytest.raises(ConfigError) as agent_err:
        load_config(str(path))
    with pytest.raises(KioskError) as kiosk_err:
        load_settings(str(path))
    assert words in str(kiosk_err.value) and "\n" not in str(kiosk_err.value)
    assert str(kiosk_err.value) == str(agent_err.value)


def test_the_kiosk_never_loads_the_agent_s_configuration(tmp_path: Path) -> None:
    path = store_file(tmp_path)
    code = ("import sys, kiosk.app, kiosk.cli, kiosk.serve, kiosk.settings\n"
            f"kiosk.settings.load_settings({str(path)!r})\n"
            "print(sorted(m for m in sys.modules if m.startswith(('agent.config', "
            "'agent.uplink', 'agent.daemon'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
                         check=True)
    assert out.stdout.strip() == "[]"
