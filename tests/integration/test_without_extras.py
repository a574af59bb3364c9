"""The agent installs and runs without the kiosk and the simulators: its command line, config
check and a running agent taking an event over the bus, in processes where importing `kiosk`
or `simulators` fails as it does when they are not installed. The commands they register say
so instead of being unknown or crashing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, wait_for, write_config

# a meta path finder that answers "no such module" for the packages the agent must not need,
# as Python does when they are not installed; every attempt is written to $BLOCKED_LOG
BLOCKER = """
import importlib.abc, os, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("kiosk", "simulators"):
            with open(os.environ["BLOCKED_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Absent())
sys.argv[0] = "o2o-edge"
from agent.cli.main import main
sys.exit(main())
"""


def bare_cli(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "BLOCKED_LOG": str(tmp_path / "blocked.log")}
    return [sys.executable, "-c", BLOCKER], env


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd, env = bare_cli(tmp_path)
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def blocked(tmp_path: Path) -> list[str]:
    log = tmp_path / "blocked.log"
    return log.read_text().split() if log.exists() else []


def test_help_and_config_check_without_kiosk_and_simulators(tmp_path: Path) -> None:
    res = run(tmp_path, "--help")
    assert res.returncode == 0, res.stderr
    for command in ("run", "emit", "status", "config", "doctor", "decode"):
        assert f"    {command} " in res.stdout
    # what the absent packages register is listed as such, not hidden or crashing
    assert "(unavailable: 'simulators' is not installed)" in res.stdout
    assert "(unavailable: 'kiosk' is not installed)" in res.stdout
    # only the command registry looked for them: nothing of the agent imports them
    assert set(blocked(tmp_path)) == {"kiosk", "simulators"}

    cfg = write_config(tmp_path / "config.toml", url="")
    res = run(tmp_path, "config", "check", "--config", str(cfg))
    assert res.returncode == 0, res.stderr


def test_an_absent_package_s_command_says_what_to_install(tmp_path: Path) -> None:
    for command, package in (("demo", "simulators"), ("scenario", "simulators"),
                             ("soak", "simulators"), ("kiosk", "kiosk")):
        res = run(tmp_path, command, "--speed", "10", "x.toml")
        assert res.returncode == 1
        assert res.stderr.strip() == (
            f"o2o-edge {command}: this command comes with the o2o-edge package '{package}', "
            "which is not installed here; install the whole o2o-edge distribution to use it")


def test_the_agent_runs_and_commits_an_event_without_kiosk_and_simulators(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", url="")  # uplink off: no broker needed
    cmd, env = bare_cli(tmp_path)
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen([*cmd, "run", "--config", str(cfg)], stdout=log,
                             stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        def up() -> bool:
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-3000:]
            return run(tmp_path, "status", "--config", str(cfg)).returncode == 0

        wait_for(up, 60, what="the agent's bus")
        res = run(tmp_path, "emit", "--config", str(cfg), "--type", "o2o.nfc.tap",
                  "--data", '{"uid": "04a1b2c3d4e5f6"}')
        assert res.returncode == 0, res.stderr
        event_id = res.stdout.strip()
        assert len(event_id) == 26  # a ULID: committed to the outbox
        exported = run(tmp_path, "outbox", "export", "--config", str(cfg))
        assert event_id in exported.stdout
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        log.close()
    assert code == 0, (tmp_path / "agent.log").read_text()[-3000:]
    assert set(blocked(tmp_path)) <= {"kiosk", "simulators"}
    assert "Traceback" not in (tmp_path / "agent.log").read_text()
