"""Downstream documents from the broker: verified, applied, cached — or refused, counted
and reported. A document that fails to apply leaves the last good state in place.

Every refusal and every failure to apply is counted by its reason (`status()`); the log line
and the upstream event about each are rate-limited per reason (reports.py), since the sender
decides how many arrive."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.contracts.events import (
    LINK_APPLIED,
    LINK_FAILED,
    LINK_REFUSED,
    LINK_WAITING,
    LinkApplied,
    LinkWaiting,
)
from agent.contracts.status import LinkStatus
from agent.keys import parse_public_key
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc, DocDeferred, DocRefused, key_id, rotated_keys, verify
from agent.storelink.reports import Schedule, Throttled, clip

log = logging.getLogger(__name__)
Emit = Callable[[str, Any], object]
# returns None, or an awaitable of the part that must run on the event loop (handle_off_loop)
Applier = Callable[[Doc], object]


class DocReceiver:
    def __init__(self, store: str, device: str, pinned: list[str], cache: LinkCache,
                 appliers: dict[str, Applier], emit: Emit,
                 clock: Callable[[], float] = time.time,
                 on_waiting: Callable[[], None] | None = None,
                 schedule: Schedule | None = None) -> None:
        """`on_waiting`: called whenever what the waiting documents need changes;
        `schedule(delay, fn)`: runs the rate-limited reports' summaries on time."""
        self.store = store
        self.device = device
        self.cache = cache
        self.appliers = appliers
        self.emit = emit
        self.clock = clock
        self.on_waiting = on_waiting
        self.pinned = {key_id(k): k for k in map(parse_public_key, pinned)}
        self.refused: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.last_refusal = ""
        self.last_failure = ""
        self.commands: Counter[str] = Counter()  # answers to commands (commands.py)
        self.refusals = Throttled(LINK_REFUSED, "refused a document", emit, schedule)
        self.failures = Throttled(LINK_FAILED, "could not apply a document", emit,
                                  schedule)
        # documents waiting for what they name: (kind, scope) -> (topic, raw, needs)
        self.deferred: dict[tuple[str, str], tuple[str, bytes, list[str]]] = {}

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        """The pinned keys until a rotation was accepted; the rotated set after."""
        rotated = self.cache.keys()
        if rotated:
            return {kid: parse_public_key(text) for kid, text in rotated.items()}
        return dict(self.pinned)

    def status(self) -> LinkStatus:
        return {"applied": {f"{k}/{s}": v for (k, s), v in self.cache.applied().items()},
                "accepted": dict(self.accepted), "refused": dict(self.refused),
                "last_refusal": self.last_refusal, "failed": dict(self.failed),
                "last_failure": self.last_failure, "commands": dict(self.commands),
                "reports_suppressed": self.refusals.suppressed_total
                + self.failures.suppressed_total,
                "trusted_keys": sorted(self.trusted()),
                # a copy: a worker may add to it meanwhile (service.py applies off the loop)
                "waiting": {f"{k}/{s}": len(needs)
                            for (k, s), (_, _, needs) in list(self.deferred.items())}}

    def check(self, topic: str, raw: bytes) -> Doc | DocRefused:
        """The verified document, or the refusal (already counted and recorded)."""
        parts = topic.split("/")
        try:
            doc = verify(raw, self.trusted(), self.store, self.device, self.clock(),
                         self.cache.applied())
            expected = "cmd" if len(parts) >= 2 and parts[-2] == "cmd" else parts[-1]
            if doc.kind != expected:
                raise DocRefused("malformed", f"a {doc.kind} document on the {expected} topic")
        except DocRefused as exc:
            self.refuse(topic, exc)
            return exc
        except Exception as exc:  # ours (the cache), not the sender's
            self.fail(topic, None, exc)
            return DocRefused("internal", "the document could not be checked; see the log")
        return doc

    def refuse(self, topic: str, exc: DocRefused) -> None:
        with self._count_lock:  # documents in worker threads, commands on the loop
            self.refused[exc.code] += 1
        where = clip(topic, 120)
        self.last_refusal = f"{where}: {clip(str(exc))}"
        self.refusals.report(exc.code, {"topic": where, "reason": exc.code,
                                          "detail": clip(str(exc))})

    def fail(self, topic: str, doc: Doc | None, exc: Exception) -> None:
        """A verified document that could not be applied for another reason than what it
        says (the disk, the database, a fault of ours): counted, reported, not cached — the
        same document is tried again when it comes again."""
        reason = "storage" if isinstance(exc, (OSError, sqlite3.Error)) else "internal"
        with self._count_lock:
            self.failed[reason] += 1
        detail = clip(f"{type(exc).__name__}: {exc}")
        what = f"{doc.kind} v{doc.version}" if doc is not None else clip(topic, 120)
        self.last_failure = f"{what}: {detail}"
        self.failures.report(reason, {"topic": clip(topic, 120), "reason": reason,
                                      "detail": detail,
                                      **({"kind": doc.kind, "version": doc.version}
                                         if doc is not None else {})})

    def accept(self, topic: str, doc: Doc, raw: bytes) -> None:
        self.cache.store(doc.kind, doc.scope, doc.version, raw)
        self.accepted[doc.kind] += 1
        applied: LinkApplied = {"kind": doc.kind, "scope": doc.scope, "version": doc.version}
        self.emit(LINK_APPLIED, applied)

    def _apply(self, doc: Doc) -> object:
        if doc.kind == "keys":
            new = rotated_keys(doc)
            self.cache.replace_keys({kid: k.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
                                     for kid, k in new.items()})
            return None
        applier = self.appliers.get(doc.kind)
        if applier is None:
            raise DocRefused("unsupported", f"no {doc.kind} documents on this agent yet")
        return applier(doc)

    def handle(self, topic: str, raw: bytes) -> Doc | None:
        """Check and apply in this thread (appliers that finish on the loop need
        handle_off_loop)."""
        doc = self.check(topic, raw)
        if isinstance(doc, DocRefused):
            return None
        try:
            result = self._apply(doc)
            if inspect.iscoroutine(result):
                result.close()
                raise RuntimeError(f"the {doc.kind} applier finishes on the event loop")
        except Exception as exc:
            self._not_applied(topic, raw, doc, exc)
            return None
        return self._applied(topic, doc, raw)

    async def handle_off_loop(self, topic: str, raw: bytes) -> Doc | None:
        """From the event loop: checked and applied in worker jobs (a snapshot, a content
        install), and the part an applier returns as an awaitable (a live config change) on
        the loop — so nothing waits for the loop from a worker."""
        doc = await asyncio.to_thread(self.check, topic, raw)
        if isinstance(doc, DocRefused):
            return None
        try:
            result = await asyncio.to_thread(self._apply, doc)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._not_applied(topic, raw, doc, exc)
            return None
        return await asyncio.to_thread(self._applied, topic, doc, raw)

    def _not_applied(self, topic: str, raw: bytes, doc: Doc, exc: Exception) -> None:
        if isinstance(exc, DocRefused):
            self._settled(doc)
            self.refuse(topic, exc)
        elif isinstance(exc, DocDeferred):
            first = (doc.kind, doc.scope) not in self.deferred
            self.deferred[(doc.kind, doc.scope)] = (topic, raw, exc.needs)
            if first:
                log.info("%s v%s waits: %s", doc.kind, doc.version, exc)
                waiting: LinkWaiting = {"kind": doc.kind, "scope": doc.scope,
                                        "version": doc.version, "needs": len(exc.needs)}
                self.emit(LINK_WAITING, waiting)
            if self.on_waiting is not None:
                self.on_waiting()
        else:  # whatever it was, it is counted and told
            self._settled(doc)
            self.fail(topic, doc, exc)

    def _applied(self, topic: str, doc: Doc, raw: bytes) -> Doc | None:
        self._settled(doc)
        try:
            self.accept(topic, doc, raw)
        except Exception as exc:  # applied, but not kept as applied
            self.fail(topic, doc, exc)
            return None
        return doc

    def _settled(self, doc: Doc) -> None:
        """A document applied or refused no longer waits for anything."""
        if self.deferred.pop((doc.kind, doc.scope), None) is not None \
                and self.on_waiting is not None:
            self.on_waiting()

    def needed(self) -> set[str]:
        """What the waiting documents still need (content files by hash)."""
        return {n for _, _, needs in list(self.deferred.values()) for n in needs}

    def retry_deferred(self) -> None:
        """Try the waiting documents again (something they need has arrived)."""
        for topic, raw, _ in list(self.deferred.values()):
            self.handle(topic, raw)
