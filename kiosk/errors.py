"""The kiosk's one root exception, with a machine-readable reason."""

from __future__ import annotations

import enum


class KioskReason(enum.Enum):
    BAD_CATALOGUE = "bad-catalogue"
    BAD_CONTENT = "bad-content"
    AGENT_DOWN = "agent-down"
    AGENT_REFUSED = "agent-refused"  # its cause, a BusRefusal, carries the agent's reason
    SERVE = "serve"
    SETTINGS = "settings"  # the [kiosk], [bus] or [device] settings (kiosk/settings.py)


class KioskError(Exception):
    """Every error the kiosk raises on purpose. The message says what to do next."""

    def __init__(self, reason: KioskReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])
