"""`o2o-edge doctor`: checks the store Pi and says, in plain words, what is wrong and how to
fix it. Each check returns findings; the exit status is 1 when anything failed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # "ok", "warn", "fail", "skip"
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level, "message": self.message,
                "fix": self.fix}


def ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def warn(check: str, message: str, fix: str = "") -> Finding:
    return Finding(check, "warn", message, fix)


def fail(check: str, message: str, fix: str = "") -> Finding:
    return Finding(check, "fail", message, fix)


def skip(check: str, message: str) -> Finding:
    return Finding(check, "skip", message)
