"""A stand-in for `systemctl`, for testing systemd/install.sh where no systemd runs (this
sandbox: PID 1 is not systemd, `systemctl is-system-running` says "offline").

It knows what the install script asks of it: `restart`, `start`, `stop` and `is-active
[--quiet]` of a unit, and takes `daemon-reload`, `enable`, `disable` and `reset-failed` as
no-ops. A unit is run
as systemd would run a Type=notify service: its ExecStart from the installed unit file (under
FAKE_SYSTEMD_ROOT, the staged root; /opt/o2o-edge and /etc/o2o-edge in it are taken under that
root too), as a child of a small keeper process that holds a NOTIFY_SOCKET; the unit is
"activating" until the child sends READY=1, then "active", and "failed" when the child exits
by itself. `restart` returns once the unit is active or failed, as systemctl's job does. Not
imitated: the unit's sandboxing, its user, Environment=, Restart= and the watchdog.
State lives in FAKE_SYSTEMD_DIR.

    python fake_systemctl.py restart o2o-edge.service
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SYSTEMD_DIR", "/tmp/fake-systemd"))
ROOT = Path(os.environ.get("FAKE_SYSTEMD_ROOT", "/"))
MAPPED = ("/opt/o2o-edge", "/etc/o2o-edge")


def _state(unit: str) -> str:
    try:
        return (STATE / f"{unit}.state").read_text().strip()
    except FileNotFoundError:
        return "inactive"


def _set_state(unit: str, state: str) -> None:
    tmp = STATE / f".{unit}.state"
    tmp.write_text(state)
    tmp.replace(STATE / f"{unit}.state")


def _exec_start(unit: str) -> list[str]:
    text = (ROOT / "etc/systemd/system" / unit).read_text()
    line = next(v for v in text.splitlines() if v.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    out = []
    for arg in argv:
        for prefix in MAPPED:
            if arg == prefix or arg.startswith(prefix + "/"):
                arg = str(ROOT) + arg
        out.append(arg)
    return out


def serve(unit: str) -> int:
    """The keeper: the unit's process as its child, READY=1 read from the notify socket."""
    # an abstract socket ("@…" for the unit, as systemd allows): a path under a test's
    # tmp dir can pass the 107 bytes a socket's path may have (pytest-xdist's are longer),
    # and the keeper died binding it, the unit "activating" for ever
    key = hashlib.sha256(f"{STATE.resolve()}/{unit}".encode()).hexdigest()[:24]
    notify = f"@o2o-fake-systemd-{key}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + notify[1:])
    sock.settimeout(0.2)
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    _set_state(unit, "activating")
    child = subprocess.Popen(_exec_start(unit), env={**os.environ, "NOTIFY_SOCKET": notify})
    (STATE / f"{unit}.main.pid").write_text(str(child.pid))
    while True:
        if stopping:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            _set_state(unit, "inactive")
            return 0
        if child.poll() is not None:
            _set_state(unit, "failed")
            return 0
        with contextlib.suppress(TimeoutError):
            data = sock.recv(4096)
            if b"READY=1" in data.split(b"\n"):
                _set_state(unit, "active")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(unit: str) -> None:
    pidfile = STATE / f"{unit}.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    # the keeper says "inactive" once its child is gone (a keeper no one reaps stays a zombie)
    while (_alive(pid) and _state(unit) not in ("inactive", "failed")
           and time.monotonic() < deadline):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def start(unit: str) -> int:
    if not (ROOT / "etc/systemd/system" / unit).exists():
        print(f"Failed to start {unit}: Unit {unit} not found.", file=sys.stderr)
        return 5
    _set_state(unit, "activating")
    log = (STATE / f"{unit}.log").open("ab")
    keeper = subprocess.Popen([sys.executable, __file__, "_serve", unit], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    (STATE / f"{unit}.pid").write_text(str(keeper.pid))
    deadline = time.monotonic() + 90  # as TimeoutStartSec would
    while _state(unit) == "activating" and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0 if _state(unit) == "active" else 1


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    quiet = "--quiet" in argv
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        print("fake systemctl: a command, please", file=sys.stderr)
        return 2
    command, units = args[0], args[1:]
    if command == "_serve":
        return serve(units[0])
    if command in ("daemon-reload", "enable", "disable", "reset-failed"):
        return 0
    rc = 0
    for unit in units:
        if command == "is-active":
            state = _state(unit)
            if not quiet:
                print(state)
            rc = rc or (0 if state == "active" else 3)
        elif command == "stop":
            stop(unit)
        elif command in ("start", "restart"):
            stop(unit)
            rc = rc or start(unit)
        else:
            print(f"fake systemctl: {command} is not imitated", file=sys.stderr)
            return 2
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
