"""Commands other packages register (entry points "o2o_edge.commands"): an absent package's
command says what to install, a package that is there but does not load says so, and the
agent's own commands are parsed without looking at any of them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from agent.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def parser_with(name: str, value: str, exc: ImportError) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o2o-edge")
    sub = parser.add_subparsers(dest="command")
    cli_main._add_unavailable(sub, EntryPoint(name, value, cli_main.COMMANDS_GROUP), exc)
    return parser


def test_an_absent_package_says_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    parser = parser_with("demo", "simulators.cli:add_demo_parser",
                         ModuleNotFoundError("No module named 'simulators'", name="simulators"))
    args, rest = parser.parse_known_args(["demo", "--speed", "5"])
    assert args.any_arguments and rest == ["--speed", "5"]
    assert args.handler(args) == cli_main.EXIT_ERROR
    assert capsys.readouterr().err.strip() == (
        "o2o-edge demo: this command comes with the o2o-edge package 'simulators', which is not "
        "installed here; install the whole o2o-edge distribution to use it")


@pytest.mark.parametrize("exc", [
    ModuleNotFoundError("No module named 'textual'", name="textual"),  # a dependency is missing
    ModuleNotFoundError("No module named 'kiosk.cli'", name="kiosk.cli"),  # a broken install
    ImportError("cannot import name 'add_parser' from 'kiosk.cli'"),
])
def test_a_package_that_does_not_load_says_so(exc: ImportError,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    parser = parser_with("kiosk", "kiosk.cli:add_parser", exc)
    args = parser.parse_known_args(["kiosk"])[0]
    assert args.handler(args) == cli_main.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("o2o-edge kiosk: this command's package 'kiosk' does not load (")
    assert str(exc) in err and "\n" not in err


def test_the_agent_s_own_commands_do_not_look_up_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    looked: list[str] = []
    monkeypatch.setattr(cli_main, "add_registered_commands", lambda sub: looked.append("x"))
    with pytest.raises(SystemExit):  # config show --help exits after printing
        cli_main.main(["-v", "config", "show", "--help"])
    assert looked == []
    with pytest.raises(SystemExit):
        cli_main.main(["--help"])
    assert looked == ["x"]


def test_an_unknown_argument_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["status", "--bogus"])
    assert exit_.value.code == cli_main.EXIT_USAGE
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_the_whole_command_line_loads_no_simulator_or_cryptography() -> None:
    """`o2o-edge --help` and `o2o-edge kiosk --serve` (the served kiosk's server) build every
    package's commands: what a command needs is imported when it runs. The demo's live view
    once brought the scenario model, the till's offer codes and cryptography into every such
    process (~10 MiB)."""
    code = ("import sys\nfrom agent.cli.main import build_parser\nbuild_parser()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'textual', "
            "'cv2', 'numpy'}), sorted(m for m in sys.modules if m.startswith("
            "('simulators.scenario', 'simulators.live_view', 'drivers.qr.offer', "
            "'drivers.qr.signed'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=ROOT)
    assert res.stdout.split("\n")[0] == "[] []", res.stdout
