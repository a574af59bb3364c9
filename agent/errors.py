"""The agent's one root exception, with a machine-readable reason."""

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
