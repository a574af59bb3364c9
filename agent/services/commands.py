"""What upstream may ask of the agent (signed "cmd" documents, agent/storelink/commands.py).

Each handler runs on the event loop, where the touchpoints' state lives, and answers at once,
or when its awaitable is done (erasure works off the loop)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from agent.contracts.events import LINK_COMMAND, LinkCommand
from agent.contracts.status import Status
from agent.services.erasure import Erasure
from agent.storelink.commands import parse_level

Handler = Callable[[dict[str, Any]], Any]


class Flushable(Protocol):
    def flush(self) -> None: ...


class Restarter(Protocol):
    def restart_soon(self) -> None: ...


class UpstreamCommands:
    def __init__(self, bootid: str, status: Callable[[], Status],
                 uplink: Flushable | None, restarter: Restarter,
                 capture: Callable[[str, Any], object], erasure: Erasure) -> None:
        self._bootid = bootid
        self._status = status
        self._uplink = uplink
        self._restarter = restarter
        self._capture = capture
        self._erasure = erasure

    def handlers(self) -> dict[str, Handler]:
        return {
            "erase-subject": self.erase_subject,
            "ping": self.ping,
            "status": lambda args: self._status(),
            "flush": self.flush,
            "set-log-level": self.set_log_level,
            "restart": self.restart,
            "reload-content": self.reload_content,
        }

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "bootid": self._bootid}

    def flush(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._uplink is not None:
            self._uplink.flush()
        return {"outbox_depth": self._status()["outbox"].get("depth")}

    def set_log_level(self, args: dict[str, Any]) -> dict[str, Any]:
        name, level = parse_level(args)
        logging.getLogger().setLevel(level)
        return {"level": name}

    def restart(self, args: dict[str, Any]) -> dict[str, Any]:
        self._restarter.restart_soon()
        return {"restarting": True}

    def reload_content(self, args: dict[str, Any]) -> dict[str, Any]:
        reload: LinkCommand = {"name": "reload-content"}
        self._capture(LINK_COMMAND, reload)  # the kiosk listens
        return {"asked": "kiosk"}

    async def erase_subject(self, args: dict[str, Any]) -> dict[str, Any]:
        # a subject that is no identifier: InvalidSubject, a CommandError answered as it says
        return {"removed": await self._erasure.erase(args.get("subject"))}
