"""The staff PIN: stored as an scrypt hash in the configuration, checked in constant time,
and guarded against guessing — after `MAX_TRIES` wrong PINs the keypad locks, for twice as
long after each further lockout.

The count of wrong PINs and the lock-out are kept in a small file in the kiosk's state
directory, read and written under an exclusive lock: every kiosk process (textual-serve
starts one per browser connection, a restarted kiosk is a new one) sees the same count, so
opening a new session does not buy a new set of guesses."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

N, R, P = 2**14, 8, 1
MAX_TRIES = 5
LOCK_S = 60.0
LOCK_MAX_S: Final = 86400.0  # the doubling stops at a day: staff can still get in tomorrow


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


@dataclass
class _Tries:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0  # on the gate's clock (monotonic: one clock for every process)


def _lock_length(lockouts: int) -> float:
    return min(LOCK_S * 2.0 ** min(lockouts, 32), LOCK_MAX_S)


class PinGate:
    """`state`: the file shared by every kiosk process (None: this process only, for tests
    and when the kiosk has no state directory). `clock` must be one all kiosk processes
    share: the default, CLOCK_MONOTONIC, is the same for every process of one boot."""

    def __init__(self, stored: str, clock: Callable[[], float] = time.monotonic,
                 state: Path | None = None) -> None:
        self.stored = stored
        self.clock = clock
        self.state = state
        self._mine = _Tries()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The shared count, for one check: other kiosk processes wait (a check takes the
        ~50 ms of one scrypt)."""
        if self.state is not None:
            try:
                lock = open(self.state.with_suffix(".lock"), "a", encoding="utf-8")  # noqa: SIM115
            except OSError:
                self._private()
            else:
                with lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    yield  # the lock goes with the file's close
                return
        yield

    def _private(self) -> None:
        """The state file cannot be used (disk full, folder gone): this process goes on
        counting on its own rather than failing staff at the keypad."""
        self._mine = self._read()
        self.state = None

    def _read(self) -> _Tries:
        if self.state is None:
            return self._mine
        try:
            raw = json.loads(self.state.read_text(encoding="utf-8"))
            tries = _Tries(int(raw["failures"]), int(raw["lockouts"]),
                           float(raw["locked_until"]))
            if not (0 <= tries.failures < MAX_TRIES and tries.lockouts >= 0
                    and math.isfinite(tries.locked_until)):
                raise ValueError("out of range")
            return tries
        except FileNotFoundError:
            return _Tries()
        except (OSError, ValueError, TypeError, KeyError, OverflowError):
            # unreadable: treated as locked for a full period, not as a fresh start
            return _Tries(0, 1, self.clock() + LOCK_S)

    def _write(self, tries: _Tries) -> None:
        if self.state is None:
            self._mine = tries
            return
        tmp = self.state.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(asdict(tries)), encoding="utf-8")
            os.replace(tmp, self.state)  # whole or not at all, for a reader without the lock
        except OSError:
            self.state = None
            self._mine = tries

    def _left(self, tries: _Tries) -> float:
        # never longer than the lock itself: a stored time from before a reboot (the
        # monotonic clock starts again) or a damaged file cannot lock staff out for good
        cap = _lock_length(max(0, tries.lockouts - 1))
        return max(0.0, min(tries.locked_until - self.clock(), cap))

    def locked_for(self) -> float:
        return self._left(self._read())

    def tries_left(self) -> int:
        return MAX_TRIES - self._read().failures

    def check(self, pin: str) -> bool:
        """True when the PIN is right; a locked gate refuses without looking at the PIN."""
        if not self.stored:
            return False
        with self._held():
            tries = self._read()
            if self._left(tries) > 0:
                return False
            if verify_pin(pin, self.stored):
                self._write(_Tries())
                return True
            tries.failures += 1
            if tries.failures >= MAX_TRIES:
                tries.locked_until = self.clock() + _lock_length(tries.lockouts)
                tries.lockouts += 1
                tries.failures = 0
            self._write(tries)
            return False
