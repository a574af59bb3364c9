"""The agent's one root exception, with a machine-readable reason.

The reasons are also the bus's refusal codes (agent/contracts/bus.py): a refusal names one by
its value and the client raises the same Reason, so nothing is lost on the way."""

from __future__ import annotations

import enum


class Reason(enum.Enum):
    CONFIG = "config"
    OUTBOX_FULL = "outbox-full"
    OUTBOX_CORRUPT = "outbox-corrupt"
    OUTBOX_CLOSED = "outbox-closed"
    INVALID_EVENT = "invalid-event"
    BUS_UNAVAILABLE = "bus-unavailable"
    BUS_PROTOCOL = "bus-protocol"
    UPLINK = "uplink"
    TLS = "tls"
    BAD_CONTENT = "bad-content"  # a content manifest the kiosk could not show
    # the store link (agent/storelink): a downstream document refused or waiting, and a
    # command's arguments refused (the sender's fault: answered, not counted as a failure)
    DOCUMENT = "document"
    BAD_COMMAND = "bad-command"
    # bus refusals: try again later (busy, evicted, lagged), or fix the device (disk-full)
    BUSY = "busy"  # at the connection cap, or big requests hold the byte budget
    EVICTED = "evicted"  # an idle connection closed to make room for a new one
    LAGGED = "lagged"  # a subscriber that fell behind, dropped
    DISK_FULL = "disk-full"
    INTERNAL = "internal-error"  # a bug met by a request: answered, the agent goes on
    FORBIDDEN = "forbidden"  # a bus op this client may not use (staff ops without the token)


class AgentError(Exception):
    """Every error the agent raises on purpose. The message says what to do next."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(AgentError):
    def __init__(self, message: str) -> None:
        super().__init__(Reason.CONFIG, message)
