"""A device must be named for the fleet before it runs: the example file's placeholder store
and the device id the topics keep for the whole store ("all") stop `run` with one line saying
what to set, fail `config check`, and are a failed line of `doctor`; other commands still read
such a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from agent.config import load_config
from agent.config_load import config_problems
from agent.doctor.system import check_store_name

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, device: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[device]\n{device}\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        f'[bus]\nsocket = "{tmp_path / "agent.sock"}"\n'
    )
    return path


def test_the_example_files_placeholder_store_fails_config_check(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text((ROOT / "systemd/config.example.toml").read_text())
    (problem,) = config_problems(str(path), {})
    assert problem.startswith(f"{path}: [device] store is still the placeholder 'CHANGE-ME'")
    assert f"set it to this store's name (letters, digits, '_', '.', '-') in {path}" in problem
    path.write_text(path.read_text().replace('"CHANGE-ME"', '"berlin-01"'))
    assert config_problems(str(path), {}) == []


@pytest.mark.parametrize(
    ("device", "says"),
    [
        (
            'id = "all"',
            "[device] id 'all' is reserved (topics under o2o/v1/{store}/all/ are for "
            "the whole store); give this device a name of its own in",
        ),
        ('id = "ALL"', "[device] id 'ALL' is reserved"),
        ('store = "change-me"', "[device] store is still the placeholder 'change-me'"),
    ],
)
def test_config_check_names_what_to_set(tmp_path: Path, device: str, says: str) -> None:
    path = config(tmp_path, device)
    (problem,) = config_problems(str(path), {})
    assert problem.startswith(f"{path}: {says}"), problem


def test_both_at_once_are_both_named(tmp_path: Path) -> None:
    path = config(tmp_path, 'store = "CHANGE-ME"\nid = "all"')
    problems = config_problems(str(path), {})
    assert len(problems) == 2, problems
    # the environment names the device too, and is checked as the file is
    assert (
        len(
            config_problems(
                str(path), {"O2O_EDGE_DEVICE_ID": "all", "O2O_EDGE_DEVICE_STORE": "berlin-01"}
            )
        )
        == 1
    )
    assert (
        config_problems(
            str(path), {"O2O_EDGE_DEVICE_ID": "alles", "O2O_EDGE_DEVICE_STORE": "berlin-01"}
        )
        == []
    )


@pytest.mark.parametrize("device", ['store = "CHANGE-ME"', 'store = "s1"\nid = "all"'])
def test_the_agent_refuses_to_start_with_one_line(
    tmp_path: Path, device: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, device)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and ("placeholder" in err or "reserved" in err)
    assert not (tmp_path / "outbox.db").exists() and not (tmp_path / "agent.sock").exists()


def test_other_commands_still_read_the_file_and_doctor_says_what_to_fix(tmp_path: Path) -> None:
    cfg = load_config(str(config(tmp_path, 'store = "CHANGE-ME"\nid = "all"')), {})
    (finding,) = check_store_name(cfg)
    assert finding.level == "fail"
    assert "placeholder 'CHANGE-ME'" in finding.message and "'all' is reserved" in finding.message
    assert "set it to this store's name" in finding.fix and "such as 'pi-kiosk-1'" in finding.fix
    good = load_config(str(config(tmp_path, 'store = "berlin-01"\nid = "pi-1"')), {})
    (finding,) = check_store_name(good)
    assert finding.level == "ok" and finding.message == "store berlin-01, device pi-1"
