"""Erasure of a data subject: everywhere it is kept, counted, recorded by a hash only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from agent.services.erasure import Erasure, InvalidSubject
from tests.unit.runtime.fakes import Recorder


class FakeOutbox:
    def __init__(self) -> None:
        self.needles: list[str] = []

    def erase(self, needles: list[str]) -> Future[int]:
        self.needles = needles
        done: Future[int] = Future()
        done.set_result(2)
        return done


class FakeStored:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def erase_subject(self, subject: str) -> dict[str, int]:
        self.threads.append(threading.current_thread().name)
        return {"orders": 1, "consent_records": 1, "cached_documents": 3}


def erasure() -> tuple[Erasure, FakeOutbox, FakeStored, Recorder, list[str]]:
    outbox, stored, capture, forgotten = FakeOutbox(), FakeStored(), Recorder(), []

    def forget_visit(subject: str) -> int:
        forgotten.append(f"visit:{subject}")
        return 1

    def forget_track(subject: str) -> int:
        forgotten.append(f"track:{subject}")
        return 0
    return (Erasure(outbox, stored, forget_visit, forget_track, capture), outbox, stored,
            capture, forgotten)


def test_every_part_is_erased_and_the_record_names_the_subject_by_a_hash_only() -> None:
    service, outbox, stored, capture, forgotten = erasure()
    subject = "Zoë-1"  # two Unicode forms: both are looked for in the waiting events
    removed = asyncio.run(service.erase(subject))
    assert removed == {"outbox_events": 2, "orders": 1, "consent_records": 1,
                       "cached_documents": 3, "open_visits": 1, "presence_tracks": 0}
    assert len(outbox.needles) == 2 and all(n.startswith('"Zo') for n in outbox.needles)
    assert json.dumps(subject, ensure_ascii=False) in outbox.needles
    assert len(stored.threads) == 1 and stored.threads[0] != threading.main_thread().name
    assert forgotten == [f"visit:{subject}", f"track:{subject}"]
    [record] = capture.of("o2o.privacy.erased")
    assert record == {"subject_sha256": hashlib.sha256(subject.encode()).hexdigest()[:16],
                      "removed": removed}
    assert subject not in json.dumps(capture.events, ensure_ascii=False)


@pytest.mark.parametrize("subject", [None, 7, "", "x" * 129, "tab\there"])
def test_anything_but_an_identifier_is_refused_before_anything_is_erased(subject: Any) -> None:
    service, outbox, stored, capture, forgotten = erasure()
    with pytest.raises(InvalidSubject, match="1-128 characters"):
        asyncio.run(service.erase(subject))
    assert outbox.needles == [] and stored.threads == [] and capture.events == []
    assert forgotten == []

