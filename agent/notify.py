"""systemd's service notification protocol, spoken directly (no libsystemd needed).

`READY=1` once the outbox and the bus are up (Type=notify), `WATCHDOG=1` at half the
WatchdogSec interval from the event loop itself — and only while the agent is healthy, so a
blocked loop or a dead outbox writer gets the service restarted — `STATUS=` lines for
`systemctl status`, and `STOPPING=1` on the way out. Without NOTIFY_SOCKET (not under
systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # an abstract socket is written with a leading "@"
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and mine else 0.0
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> None:
        if not self.address:
            return
        with contextlib.suppress(OSError), \
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto("\n".join(lines).encode(), self.address)
            self.sent += 1

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    async def watchdog(self, healthy: Callable[[], str | None]) -> None:
        """Ping at half the interval while `healthy()` returns None; otherwise say why in
        STATUS and stay silent, so systemd restarts the agent."""
        if not self.watchdog_s:
            return
        reported = False
        while True:
            problem = healthy()
            if problem is None:
                self.send("WATCHDOG=1")
                if reported:
                    self.status("running")
                    reported = False
            elif not reported:
                self.status(f"unhealthy: {problem}")
                reported = True
            await asyncio.sleep(self.watchdog_s / 2)
