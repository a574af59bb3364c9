"""What `o2o-edge staff-view pin` / `token` / `bus-token` print is TOML the settings files
can take as is."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from agent.config import load_config
from agent.contracts.alerts import token_digest
from agent.errors import AgentError
from kiosk.staffview.cli import cmd_bus_token, cmd_pin, cmd_token
from kiosk.staffview.settings import parse


@pytest.mark.parametrize("name", ["Anna", "Jean-Luc", "Zoë", 'a "b"\nc\\d'])
def test_pin_lines_read_back_with_the_name_as_given(name: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_pin(argparse.Namespace(name=name, pin="1234")) == 0
    staff = tomllib.loads(capsys.readouterr().out)["staff_view"]["staff"]
    assert list(staff) == [name] and staff[name].startswith("scrypt$")


def test_token_lines_read_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_token(argparse.Namespace(name="till 2")) == 0
    devices = tomllib.loads(capsys.readouterr().out)["staff_view"]["devices"]
    assert list(devices) == ["till 2"] and devices["till 2"].startswith("sha256$")


def test_bus_token_lines_go_into_both_files_and_match(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_bus_token(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    doc = tomllib.loads(out)
    view = parse({"staff_view": {**doc["staff_view"], "enabled": True}}, "staff-view.toml")
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text(f'[outbox]\npath = "{tmp_path / "o.db"}"\n'
                        + out.split("# the agent's configuration")[1].split("\n", 1)[1])
    cfg = load_config(str(cfg_file), env={})
    assert cfg.staff.bus_tokens == [token_digest(view.bus_token)]
    assert view.bus_token not in cfg_file.read_text()  # the agent keeps only the digest
    # a second run makes another token
    assert cmd_bus_token(argparse.Namespace()) == 0
    assert tomllib.loads(capsys.readouterr().out)["staff_view"]["bus_token"] != view.bus_token


def test_the_agent_refuses_a_bus_tokens_entry_that_is_no_digest(tmp_path: Path) -> None:
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('[staff]\nbus_tokens = ["the-token-itself-pasted-by-mistake"]\n')
    with pytest.raises(AgentError, match=r"bus_tokens.*staff-view bus-token"):
        load_config(str(cfg_file), env={})
