"""A dbus-daemon of our own: a system bus on a unix socket in a temporary directory.

Pointing DBUS_SYSTEM_BUS_ADDRESS at `PrivateBus.address` makes bleak (and anything else) use
it as the system bus, so a fake BlueZ (simulators/fake_bluez.py) can own `org.bluez` there
without touching the machine's own bus.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from simulators.errors import MissingProgram
from simulators.sockpath import fitting_socket

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class BusUnavailable(MissingProgram):
    """dbus-daemon is not installed (apt-get install dbus)."""


class PrivateBus:
    """A dbus-daemon of our own, on a unix socket in a temporary directory."""

    def __init__(self, parent: Path | None = None) -> None:
        """`parent`: where its folder goes (default: the temporary directory)."""
        exe = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
        if not os.access(exe, os.X_OK):
            raise BusUnavailable("dbus-daemon is not installed (apt-get install dbus)")
        self.exe = exe
        self._dir = tempfile.mkdtemp(prefix="o2o-dbus-", dir=parent)
        self.socket, self._socket_dir = fitting_socket(Path(self._dir) / "bus.sock", "o2o-dbus-")
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = Path(self._dir) / "bus.conf"
        conf.write_text(_BUS_CONFIG.format(socket=self.socket))
        self.proc = subprocess.Popen(  # noqa: S603 - fixed program, our own config
            [self.exe, "--nofork", "--nopidfile", f"--config-file={conf}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for _ in range(200):
            if self._accepts():
                return
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dbus-daemon exited: {err}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.02)
        raise RuntimeError("dbus-daemon did not create its socket")

    def _accepts(self) -> bool:
        """The daemon listens: its socket file appears when it binds, a moment before it
        accepts, and a client connecting in between is refused."""
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
