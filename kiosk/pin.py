"""The staff PIN: stored as an scrypt hash in the configuration, checked in constant time,
and guarded against guessing — after `MAX_TRIES` wrong PINs the keypad locks, for twice as
long after each further lockout."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable

N, R, P = 2**14, 8, 1
MAX_TRIES = 5
LOCK_S = 60.0


def hash_pin(pin: str) -> str:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a staff PIN is 4 to 12 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


class PinGate:
    def __init__(self, stored: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.stored = stored
        self.clock = clock
        self.failures = 0
        self.lockouts = 0
        self.locked_until = 0.0

    def locked_for(self) -> float:
        return max(0.0, self.locked_until - self.clock())

    def tries_left(self) -> int:
        return MAX_TRIES - self.failures

    def check(self, pin: str) -> bool:
        """True when the PIN is right; a locked gate refuses without looking at the PIN."""
        if not self.stored or self.locked_for() > 0:
            return False
        if verify_pin(pin, self.stored):
            self.failures = 0
            self.lockouts = 0
            return True
        self.failures += 1
        if self.failures >= MAX_TRIES:
            self.locked_until = self.clock() + LOCK_S * 2 ** self.lockouts
            self.lockouts += 1
            self.failures = 0
        return False
