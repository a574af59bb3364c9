"""A served page's session runs the kiosk alone (`python -m kiosk.cli`), not the whole o2o-edge
command line, which loads every command's modules (the fleet CA's cryptography, the
simulators): ~10 MiB more in each session's kiosk process."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiosk import cli, serve
from tests.conftest import ROOT


def test_served_sessions_run_the_kiosk_module(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    class Server:
        def __init__(self, command: str, **kw: Any) -> None:
            started.append(command)

        def bind(self) -> None:
            raise serve.ServeError("not this time")

    monkeypatch.setattr(serve, "KioskServer", Server)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[device]\nstore = "store-1"\nid = "kiosk-1"\n')
    args = argparse.Namespace(config=str(cfg), serve="127.0.0.1:0", sessions=None)
    assert cli.cmd_kiosk(args) == 2
    assert shlex.split(started[0]) == [sys.executable, "-m", "kiosk.cli", "--config", str(cfg)]


def test_the_kiosk_runs_alone() -> None:
    res = subprocess.run([sys.executable, "-m", "kiosk.cli", "pin", "--pin", "2468"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith('[kiosk]\nstaff_pin_hash = "')
    bad = subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", "/nonexistent.toml"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("o2o-edge kiosk: ")
    assert "Traceback" not in bad.stderr


def test_a_session_loads_the_kiosk_only() -> None:
    code = ("import sys, runpy\n"
            "sys.argv = ['kiosk.cli', 'pin', '--pin', '2468']\n"
            "import kiosk.app  # what the session's kiosk loads to run\n"
            "try:\n"
            "    runpy.run_module('kiosk.cli', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    loaded = res.stderr.split()
    assert "kiosk.app" in loaded
    extra = [m for m in loaded if m.split(".")[0] in ("simulators", "cryptography")
             or m.startswith("agent.cli")]
    assert extra == [], extra
