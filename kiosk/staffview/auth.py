"""Who may use the staff view: staff sign in with their own PIN (scrypt hashes in the staff
view's settings; wrong PINs lock that name out exactly as the kiosk's keypad does — the same
PinGate, its count in the kiosk's state directory so a restart buys no new guesses) or a
handheld with its device token. Either gives a session: a random id in an HttpOnly,
SameSite=Strict cookie, expiring after the configured shift length, with its own CSRF token
that every action (a POST) must carry in a header."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kiosk.pin import PinGate
from kiosk.state import state_dir

MAX_SESSIONS: Final = 64  # a store's phones and handhelds; the oldest go first beyond
COOKIE: Final = "o2o_staff"


def hash_token(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A device token and the hash the settings keep."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


@dataclass
class Session:
    sid: str
    who: str  # a staff member's name, or "device:<name>"
    csrf: str
    expires: float


class SignIn:
    """The outcome of a sign-in: a session, or why not (and for how long, when locked)."""

    def __init__(self, session: Session | None, problem: str = "",
                 locked_s: float = 0.0) -> None:
        self.session, self.problem, self.locked_s = session, problem, locked_s


class Sessions:
    def __init__(self, staff: Mapping[str, str], devices: Mapping[str, str],
                 session_s: float, clock: Callable[[], float] = time.monotonic,
                 tries_dir: Path | None = None) -> None:
        self._devices = dict(devices)
        self._session_s = session_s
        self.clock = clock
        folder = tries_dir if tries_dir is not None else state_dir()
        # one gate per name: a guesser locks out the name guessed, not the whole team
        self._gates = {name: PinGate(stored, clock, None if folder is None else
                                     folder / f"staffview-{_file_key(name)}.json")
                       for name, stored in staff.items()}
        self._live: dict[str, Session] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._gates)

    async def pin(self, name: str, pin: str) -> SignIn:
        gate = self._gates.get(name)
        if gate is None or not (pin.isdigit() and 4 <= len(pin) <= 12):
            return SignIn(None, "wrong name or PIN")
        locked = await asyncio.to_thread(gate.locked_for)
        if locked > 0:
            return SignIn(None, f"too many wrong PINs; try again in {int(locked) + 1} s",
                          locked)
        # scrypt (~50 ms) and the shared count's file lock stay off the loop
        if await asyncio.to_thread(gate.check, pin):
            return SignIn(self._open(name))
        locked = await asyncio.to_thread(gate.locked_for)
        if locked > 0:
            return SignIn(None, f"too many wrong PINs; try again in {int(locked) + 1} s",
                          locked)
        return SignIn(None, "wrong name or PIN")

    def token(self, token: str) -> SignIn:
        offered = hash_token(token)
        for name, stored in self._devices.items():
            if hmac.compare_digest(offered, stored):
                return SignIn(self._open(f"device:{name}"))
        return SignIn(None, "unknown device token")

    def _open(self, who: str) -> Session:
        self._sweep()
        while len(self._live) >= MAX_SESSIONS:
            oldest = min(self._live.values(), key=lambda s: s.expires)
            del self._live[oldest.sid]
        s = Session(secrets.token_urlsafe(32), who, secrets.token_urlsafe(24),
                    self.clock() + self._session_s)
        self._live[s.sid] = s
        return s

    def _sweep(self) -> None:
        now = self.clock()
        for sid in [sid for sid, s in self._live.items() if s.expires <= now]:
            del self._live[sid]

    def get(self, sid: str | None) -> Session | None:
        """The live session of this cookie value, else None."""
        if not sid:
            return None
        s = self._live.get(sid)
        if s is None or s.expires <= self.clock():
            self._live.pop(sid or "", None)
            return None
        return s

    def close(self, sid: str) -> None:
        self._live.pop(sid, None)

    def __len__(self) -> int:
        self._sweep()
        return len(self._live)


def _file_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]
