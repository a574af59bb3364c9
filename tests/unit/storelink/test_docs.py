"""Signed downstream documents: each refusal case refused with its reason and counted, a
good document applied and cached, key rotation, and a bad update keeping the last good."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.checkin import StoreDb
from agent.keys import public_key_text
from agent.storelink.apply import store_data_appliers
from agent.storelink.cache import LinkCache
from agent.storelink.docs import MAX_BYTES, sign
from agent.storelink.receiver import DocReceiver

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
TOPIC = "o2o/v1/berlin-01/all/orders"


def orders(version: int, rows: list[dict[str, Any]], key: Ed25519PrivateKey = KEY,
           mode: str = "snapshot", **over: Any) -> bytes:
    args: dict[str, Any] = {"kind": "orders", "store": "berlin-01", "device": "all",
                            "version": version, "issued": NOW - 10, "expires": NOW + 3600,
                            "body": {"mode": mode, "rows": rows}}
    args.update(over)
    return sign(key, **args)


ANNA = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready"}


@pytest.fixture
def rx(tmp_path: Path) -> tuple[DocReceiver, StoreDb, list[tuple[str, Any]]]:
    db = StoreDb(tmp_path / "store.db")
    events: list[tuple[str, Any]] = []
    receiver = DocReceiver("berlin-01", "pi-1", [public_key_text(KEY.public_key())],
                           LinkCache(tmp_path / "store.db"), store_data_appliers(db),
                           lambda t, d: events.append((t, d)), clock=lambda: NOW)
    return receiver, db, events


def _tamper(raw: bytes, **change: Any) -> bytes:
    doc = json.loads(raw)
    doc.update(change)
    return json.dumps(doc).encode()


def test_each_refusal_has_its_reason_and_nothing_is_applied(
        rx: tuple[DocReceiver, StoreDb, list[tuple[str, Any]]]) -> None:
    receiver, db, events = rx
    other = Ed25519PrivateKey.generate()
    good = orders(5, [ANNA])
    unsigned = json.loads(good)
    del unsigned["sig"]
    cases = {
        "malformed": b"{not json",
        "unsigned": json.dumps(unsigned).encode(),
        "unknown-key": orders(5, [ANNA], key=other),
        "bad-signature": _tamper(good, version=99),
        "expired": orders(5, [ANNA], expires=NOW - 1),
        "not-yet-valid": orders(5, [ANNA], issued=NOW + 3600),
        "not-for-us": orders(5, [ANNA], store="hamburg-02"),
        "oversized": b" " * (MAX_BYTES + 1),
    }
    for reason, raw in cases.items():
        assert receiver.handle(TOPIC, raw) is None, reason
    assert dict(receiver.refused) == dict.fromkeys(cases, 1)
    assert db.order("A-1") is None
    refused = [d["reason"] for t, d in events if t == "o2o.link.refused"]
    assert refused == list(cases)
    # a forged signature of the right length is still refused
    forged = _tamper(good, sig=base64.b64encode(b"\0" * 64).decode())
    assert receiver.handle(TOPIC, forged) is None and receiver.refused["bad-signature"] == 2


def test_applied_cached_replayed_and_older_refused(
        rx: tuple[DocReceiver, StoreDb, list[tuple[str, Any]]], tmp_path: Path) -> None:
    receiver, db, events = rx
    first = orders(5, [ANNA])
    assert receiver.handle(TOPIC, first) is not None
    assert db.order("A-1")["first_name"] == "Anna"  # type: ignore[index]
    assert receiver.handle(TOPIC, first) is None  # the same document again
    assert receiver.handle(TOPIC, orders(4, [ANNA])) is None
    assert receiver.refused == {"replayed": 1, "older-version": 1}
    # an increment adds; a snapshot makes the table exactly its rows
    ben = {"order_id": "A-2", "code": "BEN222", "first_name": "Ben"}
    assert receiver.handle(TOPIC, orders(6, [ben], mode="increment")) is not None
    assert db.order("A-1") and db.order("A-2")
    assert receiver.handle(TOPIC, orders(7, [ben])) is not None
    assert db.order("A-1") is None and db.order("A-2")
    # a bad update is refused whole and the last good state stays
    assert receiver.handle(TOPIC, orders(8, [ANNA, {"order_id": "", "code": "??"}])) is None
    assert db.order("A-1") is None and db.order("A-2") and receiver.refused["malformed"] == 1
    # after a restart the cache knows what was applied (and still refuses the replay)
    cache = LinkCache(tmp_path / "store.db")
    assert cache.applied() == {("orders", "all"): 7}
    assert cache.document("orders", "all") == orders(7, [ben])  # Ed25519 is deterministic
    assert [d["version"] for t, d in events if t == "o2o.link.applied"] == [5, 6, 7]


def test_key_rotation(rx: tuple[DocReceiver, StoreDb, list[tuple[str, Any]]]) -> None:
    receiver, db, _ = rx
    assert db.order("A-1") is None
    new = Ed25519PrivateKey.generate()
    rotation = sign(KEY, "keys", "berlin-01", "all", 1, NOW - 1, NOW + 86400,
                    {"keys": [public_key_text(new.public_key())]})
    forged_rotation = sign(new, "keys", "berlin-01", "all", 2, NOW - 1, NOW + 86400,
                           {"keys": [public_key_text(new.public_key())]})
    assert receiver.handle("o2o/v1/berlin-01/all/keys", forged_rotation) is None
    assert receiver.refused["unknown-key"] == 1  # a new key cannot vouch for itself
    assert receiver.handle("o2o/v1/berlin-01/all/keys", rotation) is not None
    assert receiver.handle(TOPIC, orders(1, [ANNA], key=new)) is not None
    assert db.order("A-1") is not None
    assert receiver.handle(TOPIC, orders(2, [ANNA], key=KEY)) is None  # the old key retired
    assert receiver.refused["unknown-key"] == 2
