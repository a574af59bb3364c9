"""The simulators' one root exception, with a machine-readable reason.

Each kind below also keeps the built-in class it always had (ValueError for bad input,
RuntimeError for a missing program or a kiosk that did not answer), so code that caught
those goes on catching them."""

from __future__ import annotations

import enum


class SimReason(enum.Enum):
    SCENARIO = "scenario"  # a scenario file that cannot be used
    SHOPPER = "shopper"  # the simulated shopper did not get what the kiosk should show
    BAD_FRAME = "bad-frame"  # a beacon frame that cannot be encoded
    MISSING_PROGRAM = "missing-program"  # a broker or dbus-daemon not installed


class SimulatorError(Exception):
    """Every error the simulators raise on purpose. The message says what to do next."""

    def __init__(self, reason: SimReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class ScenarioError(SimulatorError, ValueError):
    """The scenario file cannot be used; the message names the place and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(SimReason.SCENARIO, message)


class ShopperError(SimulatorError, RuntimeError):
    def __init__(self, message: str) -> None:
        super().__init__(SimReason.SHOPPER, message)


class FrameError(SimulatorError, ValueError):
    """The beacon cannot be encoded (an Eddystone URL too long or with invalid characters)."""

    def __init__(self, message: str) -> None:
        super().__init__(SimReason.BAD_FRAME, message)


class MissingProgram(SimulatorError, RuntimeError):
    """A program a simulator runs is not installed; the message names the Debian package."""

    def __init__(self, message: str) -> None:
        super().__init__(SimReason.MISSING_PROGRAM, message)
