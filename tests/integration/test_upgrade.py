"""Updates with rollback, for real in a staged root: `systemd/install.sh upgrade` builds a new
version's venv beside the one in use (/opt/o2o-edge/venvs/VERSION, a hard-linked copy of it
that pip brings up to date), switches the /opt/o2o-edge/venv symlink the units run, restarts
the agent and judges its health: READY, `o2o-edge status` naming the new version with its
outbox writer running, the uplink connected.

The version in use at the start is a venv from before versioned installs (a real directory at
/opt/o2o-edge/venv, which the script adopts as venvs/7.0.0), made from a hard-linked copy of
the project's .venv with this tree installed in it: a fresh venv costs 25 s of pip here, and
test_deploy.py already installs one from nothing. No systemd runs in this sandbox (PID 1 is
not systemd; `systemctl is-system-running` says "offline"), so the script is given
tests/fake_systemctl.py as its SYSTEMCTL: it runs the installed unit's own ExecStart as a
Type=notify service is run (active once the agent sends READY=1 on a notify socket, failed
when it exits). The unit's sandboxing, user and watchdog are not imitated here;
test_deploy.py verifies the units with systemd-analyze.

A wheel pip cannot install changes nothing. A version that cannot connect (its uplink dials a
port where no broker is) is rolled back by
itself: the old version runs again, and the events the failed one committed meanwhile are in
the outbox it kept and reach the broker. A good version then stays, a kiosk-side unit that
runs follows it, the previous venv is kept and the failed one removed. A version that took the
store database a step further is not rolled back from: the version before refuses that file,
in one line."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import BusClient
from simulators.brokers import PrivateBroker
from tests.conftest import ROOT, wait_for
from tests.integration.conftest import Subscriber

SHIM = ROOT / "tests" / "fake_systemctl.py"


def snapshot(dest: Path) -> Path:
    """This tree as the rest of the suite sees it (tracked and new files, nothing ignored),
    copied once: every version below is made from the same files."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    for name in names.splitlines():
        src = ROOT / name
        if src.is_file() and not name.startswith("tests/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def built_wheel(tmp_path: Path) -> Path:
    """This tree's wheel, built once as pip builds it (the versions below are made from it:
    a build costs 15-20 s here, mostly pip fetching the build's setuptools)."""
    tree = snapshot(tmp_path / "tree")
    out = tmp_path / "wheel"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                          str(tree)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    (wheel,) = out.glob("o2o_edge-*.whl")
    return wheel


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def version_wheel(wheel: Path, dest: Path, version: str, *, cannot_connect: bool = False,
                  store_step: bool = False) -> Path:
    """The wheel as another version: its number in the program, the metadata and the name; a
    build that cannot connect dials port 9 whatever its configuration says; `store_step`: its
    store database has one step (a table) more."""
    old = wheel.name.split("-")[1]
    out = dest / wheel.name.replace(f"-{old}-", f"-{version}-")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as src:
        files = {n.replace(f"o2o_edge-{old}.dist-info/", f"o2o_edge-{version}.dist-info/"):
                 src.read(n) for n in src.namelist()}
    info = f"o2o_edge-{version}.dist-info/"

    def edit(name: str, change: Any) -> None:
        files[name] = change(files[name].decode()).encode()

    edit("agent/__init__.py", lambda t: re.sub(r'(?m)^__version__ = ".*"$',
                                               f'__version__ = "{version}"', t))
    edit(info + "METADATA", lambda t: re.sub(r"(?m)^Version: .*$", f"Version: {version}", t))
    if cannot_connect:
        assert "self.port = parts.port or" in files["agent/uplink/link.py"].decode()
        edit("agent/uplink/link.py",
             lambda t: t.replace("self.port = parts.port or", "self.port = 9 or"))
    if store_step:
        def one_more(source: str) -> str:
            last = max(int(n) for n in re.findall(r"^    Migration\((\d+),", source, re.M))
            at = source.index("\n)\n", source.index("MIGRATIONS: tuple"))
            return (source[:at] + f'\n    Migration({last + 1}, "a later step", '
                    '("CREATE TABLE later_step (x INTEGER)",)),' + source[at:])
        edit("agent/storedb/migrations.py", one_more)
    record = info + "RECORD"
    files[record] = "".join(f"{n},{_digest(d)},{len(d)}\n" for n, d in files.items()
                            if n != record).encode() + f"{record},,\n".encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out


class Staged:
    def __init__(self, tmp: Path, broker_url: str) -> None:
        self.root = tmp / "root"
        self.root.mkdir()
        self.systemd = tmp / "systemd-state"
        self.env = {
            "DESTDIR": str(self.root),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHON": shutil.which("python3") or "python3",
            "SYSTEMCTL": f"{sys.executable} {SHIM}",
            "FAKE_SYSTEMD_DIR": str(self.systemd),
            "FAKE_SYSTEMD_ROOT": str(self.root),
            "XDG_STATE_HOME": str(self.root / "var/lib"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "HOME": str(tmp),
        }
        self.url = broker_url
        self.socket = self.root / "run/o2o-edge/agent.sock"

    def script(self, *args: str, script: Path = ROOT / "systemd" / "install.sh",
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(script), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def seed(self, tree: Path) -> None:
        """A venv from before versioned installs at /opt/o2o-edge/venv with `tree` (a wheel)
        in it: the
        project's venv copied with hard links (its scripts named after their new place, as
        the script does) and the tree installed over its editable install."""
        venv = self.root / "opt/o2o-edge/venv"
        venv.parent.mkdir(parents=True)
        subprocess.run(["cp", "-al", sys.prefix, str(venv)], check=True, timeout=120)
        for script in (venv / "bin").iterdir():
            if script.is_file() and not script.is_symlink():
                head = script.read_bytes()[:200]
                if head.startswith(b"#!" + sys.prefix.encode()):
                    text = script.read_bytes().replace(sys.prefix.encode(), str(venv).encode())
                    script.unlink()  # a file of its own, not the project venv's
                    script.write_bytes(text)
                    script.chmod(0o755)
        res = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q",
                              "--no-deps", str(tree)], capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        units = self.root / "etc/systemd/system"
        units.mkdir(parents=True)
        shutil.copy(ROOT / "systemd" / "o2o-edge.service", units)

    def configure(self) -> None:
        state = self.root / "var/lib/o2o-edge"
        state.mkdir(parents=True, exist_ok=True)
        (self.root / "run/o2o-edge").mkdir(parents=True, exist_ok=True)
        (self.root / "etc/o2o-edge").mkdir(parents=True, exist_ok=True)
        (self.root / "etc/o2o-edge/config.toml").write_text(f"""
[device]
store = "store-1"
id = "dev-1"
[outbox]
path = "{state / 'outbox.db'}"
[mqtt]
url = "{self.url}"
backoff_min_s = 0.1
backoff_max_s = 1.0
[bus]
socket = "{self.socket}"
[kiosk]
store_db = "{state / 'store.db'}"
""")

    def in_use(self) -> str:
        return os.readlink(self.root / "opt/o2o-edge/venv")

    def status(self) -> dict[str, Any]:
        with BusClient(str(self.socket), timeout=10) as c:
            return dict(c.status())

    def systemctl(self, *args: str) -> str:
        return subprocess.run([sys.executable, str(SHIM), *args], env=self.env, text=True,
                              capture_output=True, timeout=120).stdout.strip()


# a stand-in for a kiosk unit: it runs the venv's python, says which venv that is, and stays
KIOSK_LIKE = ("[Service]\nExecStart=/opt/o2o-edge/venv/bin/python -c \""
              "import os, socket, sys, time; "
              "open(os.environ['VENV_SEEN'], 'w').write(os.path.realpath(sys.prefix)); "
              "a = os.environ['NOTIFY_SOCKET']; "  # an abstract socket is written "@…"
              "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)"
              ".sendto(b'READY=1', '\\0' + a[1:] if a[0] == '@' else a); "
              "time.sleep(3600)\"\n")


@pytest.fixture
def staged(tmp_path: Path, mosquitto: PrivateBroker) -> Any:
    s = Staged(tmp_path, mosquitto.url)
    yield s
    s.systemctl("stop", "o2o-edge.service", "o2o-edge-staff.service")


def started_versions(sub: Subscriber) -> list[str]:
    with sub.lock:
        return [e["data"]["version"] for e in sub.events.values()
                if e["type"] == "o2o.agent.started"]


def test_a_version_that_cannot_connect_is_rolled_back_and_a_good_one_stays(
    tmp_path: Path, staged: Staged, subscribers: list[Subscriber]
) -> None:
    wheel = built_wheel(tmp_path)
    staged.seed(version_wheel(wheel, tmp_path / "v", "7.0.0"))
    first = "venvs/7.0.0"
    staged.configure()
    sub = Subscriber(staged.url, "o2o/v1/store-1/dev-1/events", "upstream")
    subscribers.append(sub)
    assert sub.connected.wait(10)
    staged.systemctl("restart", "o2o-edge.service")
    assert staged.systemctl("is-active", "o2o-edge.service") == "active"
    old = staged.status()["agent"]["version"]
    # a kiosk-side unit that runs: it must follow the version in use
    seen = tmp_path / "venv-seen"
    staged.env["VENV_SEEN"] = str(seen)
    (staged.root / "etc/systemd/system/o2o-edge-staff.service").write_text(KIOSK_LIKE)
    staged.systemctl("restart", "o2o-edge-staff.service")
    assert staged.systemctl("is-active", "o2o-edge-staff.service") == "active"
    kiosk_pid = staged.systemd / "o2o-edge-staff.service.main.pid"
    first_pid = kiosk_pid.read_text()

    # nothing to install, and a wheel pip cannot install: nothing changes, the agent runs on
    res = staged.script("upgrade", str(tmp_path / "missing.whl"))
    assert res.returncode == 2 and "no such file or directory" in res.stderr
    broken = tmp_path / "v" / "o2o_edge-7.0.9-py3-none-any.whl"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"not a zip file")
    res = staged.script("upgrade", str(broken))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "the venv in use is now /opt/o2o-edge/venvs/7.0.0" in res.stdout  # old layout
    assert "7.0.9 did not install (pip's words above); 7.0.0 still runs, nothing changed" \
        in res.stderr
    assert staged.in_use() == first
    assert not (staged.root / "opt/o2o-edge/venvs/7.0.9").exists()
    assert staged.status()["agent"]["version"] == old

    bad = version_wheel(wheel, tmp_path / "v", "7.0.1", cannot_connect=True)
    res = staged.script("upgrade", str(bad), "--timeout", "6")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "the agent 7.0.1 is not healthy: the uplink is" in out
    assert f"rolled back to {first.removeprefix('venvs/')}, which runs again" in out
    assert staged.in_use() == first
    assert (staged.root / "opt/o2o-edge/venvs/7.0.1").is_dir()  # kept for a look
    # the kiosk-side unit was restarted with each switch, and runs the old version again
    assert kiosk_pid.read_text() != first_pid
    assert seen.read_text().endswith("/opt/o2o-edge/venvs/7.0.0")
    # ... but not as the version `rollback` goes to: there was none before it
    assert not os.path.lexists(staged.root / "opt/o2o-edge/venv.previous")
    status = staged.status()
    assert status["agent"]["version"] == old and status["uplink"]["state"] == "connected"
    # what the failed version committed waited in the outbox the old one kept, and is sent
    wait_for(lambda: "7.0.1" in started_versions(sub), 30,
             what=lambda: f"the failed version's start event upstream: {started_versions(sub)}")
    wait_for(lambda: staged.status()["outbox"]["depth"] == 0, 30, what="the outbox drained")

    good = version_wheel(wheel, tmp_path / "v", "7.0.2")
    res = staged.script("upgrade", str(good), "--timeout", "60")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert staged.in_use() == "venvs/7.0.2"
    assert staged.status()["agent"]["version"] == "7.0.2"
    assert seen.read_text().endswith("/opt/o2o-edge/venvs/7.0.2")  # the kiosk unit followed
    venvs = sorted(p.name for p in (staged.root / "opt/o2o-edge/venvs").iterdir())
    assert venvs == sorted(["7.0.2", first.removeprefix("venvs/")])  # the failed one went
    # the dependencies are shared with the version before, not copied
    lib = staged.root / "opt/o2o-edge/venvs/7.0.2/lib"
    numpy = next(lib.glob("python3*/site-packages/numpy/__init__.py"))
    assert numpy.stat().st_nlink >= 2
    doctor = subprocess.run(
        [str(staged.root / "opt/o2o-edge/venv/bin/o2o-edge"), "doctor", "--config",
         str(staged.root / "etc/o2o-edge/config.toml")],
        env=staged.env, capture_output=True, text=True, timeout=120)
    (line,) = [v for v in doctor.stdout.splitlines() if " program " in v]
    assert line.startswith("ok") and "7.0.2 in" in line, doctor.stdout
    assert line.endswith("; 7.0.0 kept for 'install.sh rollback'"), doctor.stdout


@pytest.mark.slow
def test_rollback_and_a_version_that_moved_the_store_database_on(
    tmp_path: Path, staged: Staged
) -> None:
    """`rollback` goes back to the version before; a version that took the store database a
    step further and cannot connect stays (the one before would not start on that file), and
    the one before says so in one line when run."""
    wheel = built_wheel(tmp_path)
    staged.seed(version_wheel(wheel, tmp_path / "v", "7.0.0"))
    staged.configure()
    staged.systemctl("restart", "o2o-edge.service")
    good = version_wheel(wheel, tmp_path / "v", "7.0.2")
    res = staged.script("upgrade", str(good), "--timeout", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    assert staged.status()["agent"]["version"] == "7.0.2"
    res = staged.script("rollback", "--timeout", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    assert staged.in_use() == "venvs/7.0.0" and staged.status()["agent"]["version"] == "7.0.0"
    assert os.readlink(staged.root / "opt/o2o-edge/venv.previous") == "venvs/7.0.2"

    # a version that takes the store database a step further and cannot connect: the one
    # before it would refuse that file, so it is not gone back to
    later = version_wheel(wheel, tmp_path / "v", "7.0.3", cannot_connect=True,
                          store_step=True)
    res = staged.script("upgrade", str(later), "--timeout", "8")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "not rolled back: 7.0.3 brought the outbox and store database to schemas" in out
    assert staged.in_use() == "venvs/7.0.3" and staged.status()["agent"]["version"] == "7.0.3"
    staged.systemctl("stop", "o2o-edge.service")
    refused = subprocess.run(
        [str(staged.root / "opt/o2o-edge/venvs/7.0.0/bin/o2o-edge"), "run", "--config",
         str(staged.root / "etc/o2o-edge/config.toml")],
        env=staged.env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "was written by a newer o2o-edge" in line and "install that version again" in line
