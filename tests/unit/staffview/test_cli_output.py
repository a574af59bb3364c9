"""What `o2o-edge staff-view pin` / `token` print is TOML the settings file can take as is."""

from __future__ import annotations

import argparse
import tomllib

import pytest

from kiosk.staffview.cli import cmd_pin, cmd_token


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
