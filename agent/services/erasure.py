"""A data subject erased everywhere the agent keeps it (the erase-subject command): the
events still waiting in the outbox, the store database (orders, appointments, loyalty cards,
consent records, cached documents that named it), the open shopper-app visit and the presence
track. The databases are searched and rewritten off the loop; the visit and the track, which
live on the loop, are forgotten there. The record of the erasure names the subject only by a
hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from agent.contracts.events import PRIVACY_ERASED, PrivacyErased
from agent.storedb import subject_forms
from agent.storelink.commands import CommandError

MAX_SUBJECT = 128  # characters


class InvalidSubject(CommandError):
    """The subject to erase is not an identifier: the request's fault, answered so."""


class Outbox(Protocol):
    def erase(self, needles: list[str]) -> Future[int]: ...


class StoredData(Protocol):
    """The store database's part (agent/privacy.py Privacy asks each table group)."""

    def erase_subject(self, subject: str) -> dict[str, int]: ...


class Erasure:
    def __init__(self, outbox: Outbox, stored: StoredData, forget_visits: Callable[[str], int],
                 forget_presence: Callable[[str], int],
                 capture: Callable[[str, Any], object]) -> None:
        self._outbox = outbox
        self._stored = stored
        self._forget_visits = forget_visits
        self._forget_presence = forget_presence
        self._capture = capture

    async def erase(self, subject: object) -> dict[str, int]:
        """On the loop; what was removed, by kind. InvalidSubject for anything but an
        identifier of 1-128 printable characters."""
        if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT \
                or not subject.isprintable():
            raise InvalidSubject(
                f"subject must be the identifier to erase (1-{MAX_SUBJECT} characters)")
        # the subject as it may be written: events are JSON with its characters as they are
        # (not \u-escaped), in either Unicode normal form
        needles = sorted({json.dumps(f, ensure_ascii=False) for f in subject_forms(subject)})
        outbox = await asyncio.wrap_future(self._outbox.erase(needles))
        stored = await asyncio.to_thread(self._stored.erase_subject, subject)
        removed = {"outbox_events": outbox, **stored,
                   "open_visits": self._forget_visits(subject),
                   "presence_tracks": self._forget_presence(subject)}
        erased: PrivacyErased = {
            "subject_sha256": hashlib.sha256(subject.encode()).hexdigest()[:16],
            "removed": removed}
        self._capture(PRIVACY_ERASED, erased)
        return removed

