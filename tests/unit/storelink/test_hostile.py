"""The store link's pure parts against hostile and careless documents: replay protection that
the retention sweep cannot delete, numbers no time or version can be, bundle file names that
would overwrite the bundle's own files or each other, rate-limited reports that still count
everything, and cached documents found by a subject in any alphabet."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.checkin import StoreDb
from agent.keys import public_key_text
from agent.privacy import Privacy
from agent.storelink.apply import store_data_appliers
from agent.storelink.cache import LinkCache
from agent.storelink.content import check_names, install_bundle
from agent.storelink.docs import Doc, DocRefused, sign
from agent.storelink.receiver import DocReceiver
from agent.storelink.reports import MAX_KEYS, Throttled

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
TOPIC = "o2o/v1/berlin-01/all/orders"
ANNA = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready"}


def orders(version: int, rows: list[dict[str, Any]], **over: Any) -> bytes:
    args: dict[str, Any] = {"kind": "orders", "store": "berlin-01", "device": "all",
                            "version": version, "issued": NOW - 10, "expires": NOW + 30 * 86400,
                            "body": {"mode": "snapshot", "rows": rows}}
    args.update(over)
    return sign(KEY, **args)


def receiver(tmp_path: Path, events: list[tuple[str, Any]], clock: float = NOW) -> DocReceiver:
    return DocReceiver("berlin-01", "pi-1", [public_key_text(KEY.public_key())],
                       LinkCache(tmp_path / "store.db"),
                       store_data_appliers(StoreDb(tmp_path / "store.db")),
                       lambda t, d: events.append((t, d)), clock=lambda: clock)


def test_the_retention_sweep_does_not_reopen_replays(tmp_path: Path) -> None:
    events: list[tuple[str, Any]] = []
    rx = receiver(tmp_path, events)
    old, new = orders(3, [ANNA]), orders(5, [{**ANNA, "first_name": "Ben"}])
    assert rx.handle(TOPIC, new) is not None
    privacy = Privacy(tmp_path / "store.db")
    swept = privacy.sweep(retention_days=1, now=time.time() + 3 * 86400)  # the body goes...
    assert swept["link_docs"] == 1
    assert rx.cache.document("orders", "all") is None
    later = receiver(tmp_path, events, clock=NOW + 3 * 86400)  # ...even after a restart
    assert later.handle(TOPIC, old) is None  # still valid, but older: refused
    assert later.handle(TOPIC, new) is None
    assert later.refused == {"older-version": 1, "replayed": 1}
    assert later.status()["applied"] == {"orders/all": 5}


def test_versions_of_a_database_from_before_are_kept(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "store.db")
    db.executescript("CREATE TABLE link_docs (kind TEXT NOT NULL, scope TEXT NOT NULL, "
                     "version INTEGER NOT NULL, raw BLOB NOT NULL, applied_at REAL NOT NULL, "
                     "PRIMARY KEY (kind, scope));"
                     "INSERT INTO link_docs VALUES ('orders', 'all', 9, x'7b7d', 0);")
    db.close()
    assert LinkCache(tmp_path / "store.db").applied() == {("orders", "all"): 9}


@pytest.mark.parametrize("over", [
    {"version": 10**30}, {"version": -1}, {"issued": 10**400}, {"expires": 10**400},
    {"expires": -(10**30)}])
def test_numbers_no_version_or_time_can_be_are_refused(tmp_path: Path,
                                                       over: dict[str, Any]) -> None:
    rx = receiver(tmp_path, [])
    assert rx.handle(TOPIC, orders(**{"version": 1, "rows": [ANNA], **over})) is None
    assert rx.refused == {"malformed": 1} and rx.failed == {}


def test_deep_nesting_is_refused_as_malformed(tmp_path: Path) -> None:
    rx = receiver(tmp_path, [])
    assert rx.handle(TOPIC, b"[" * 200_000 + b"]" * 200_000) is None
    assert rx.refused == {"malformed": 1}
    assert "nested too deeply" in rx.last_refusal


def test_duplicate_ids_and_codes_refuse_the_document(tmp_path: Path) -> None:
    rx = receiver(tmp_path, [])
    assert rx.handle(TOPIC, orders(1, [ANNA, {**ANNA, "order_id": "A-2"}])) is None
    assert rx.handle(TOPIC, orders(2, [ANNA, {**ANNA, "code": "ZZZZ"}])) is None
    assert rx.refused == {"malformed": 2}
    assert "code 'K7Q2M9' is row 1's too" in rx.last_refusal or "order_id" in rx.last_refusal


def test_a_failure_that_is_no_refusal_is_counted_and_told(tmp_path: Path) -> None:
    events: list[tuple[str, Any]] = []
    rx = receiver(tmp_path, events)

    def broken(doc: Doc) -> None:
        raise OSError(28, "No space left on device")

    rx.appliers["orders"] = broken
    assert rx.handle(TOPIC, orders(1, [ANNA])) is None
    assert rx.failed == {"storage": 1} and rx.status()["failed"] == {"storage": 1}
    assert "No space left" in rx.status()["last_failure"]
    assert [t for t, _ in events] == ["o2o.link.failed"]
    rx.appliers["orders"] = store_data_appliers(StoreDb(tmp_path / "store.db"))["orders"]
    assert rx.handle(TOPIC, orders(1, [ANNA])) is not None  # not kept as applied: retried


def bundle(files: dict[str, bytes], version: int = 2) -> Doc:
    body = {"manifest": {"version": version, "pages": [{"id": "p", "title": {"en": "Hi"}}]},
            "files": {n: {"sha256": hashlib.sha256(d).hexdigest(),
                          "data_b64": base64.b64encode(d).decode()} for n, d in files.items()}}
    return Doc("content", "s", "all", version, NOW, NOW + 60, body, "k")


@pytest.mark.parametrize(("names", "says"), [
    (["manifest.json"], "the bundle's own"),
    (["Manifest.JSON"], "the bundle's own"),
    (["manifest.json/x.png"], "the bundle's own"),
    ([".hashes.json"], "not allowed"),
    (["a", "a/b"], "also the folder"),
    (["img/a/b.png", "img/a"], "also the folder"),
    (["img/A.png", "img/a.png"], "differ only in case"),
    (["../x"], "not allowed"), (["a/../../x"], "not allowed"), (["/etc/passwd"], "not allowed"),
    (["a//b"], "not allowed"), ([""], "not allowed"), ([7], "not allowed"),
    ([f"f{i}" for i in range(513)], "at most 512"),
])
def test_bundle_file_names_that_collide_are_refused(names: list[Any], says: str) -> None:
    with pytest.raises(DocRefused, match=says) as info:
        check_names(names)
    assert info.value.code == "malformed"


def test_a_file_named_manifest_json_cannot_replace_the_checked_manifest(tmp_path: Path) -> None:
    root = tmp_path / "content"
    install_bundle(bundle({"img/p.png": b"png"}, version=1), root)
    with pytest.raises(DocRefused, match="the bundle's own"):
        install_bundle(bundle({"manifest.json": b'{"version": 2, "pages": "evil"}'}), root)
    assert (root / "current").resolve().name == "v1"
    assert not (root / "v2").exists()
    check_names(["img/a.png", "img/b.png", "video/loop.mp4", "a.b-c_d"])  # fine names pass


def test_reports_are_rate_limited_per_reason_and_summed_up() -> None:
    told: list[tuple[str, dict[str, Any]]] = []
    scheduled: list[tuple[float, Any]] = []
    clock = [0.0]
    th = Throttled("o2o.link.refused", "refused", lambda t, d: told.append((t, d)),
                   schedule=lambda delay, fn: scheduled.append((delay, fn)),
                   clock=lambda: clock[0])
    for i in range(10_000):
        th.report("unsigned", {"reason": "unsigned", "n": i})
    th.report("expired", {"reason": "expired"})
    assert [d for _, d in told] == [{"reason": "unsigned", "n": 0}, {"reason": "expired"}]
    assert th.suppressed_total == 9_999 and len(scheduled) == 1
    clock[0] = scheduled[0][0]
    scheduled[0][1]()  # the window is over: one summary with the count and the last one
    assert told[-1][1] == {"reason": "unsigned", "n": 9_999, "more": 9_999, "window_s": 60.0}
    th.report("unsigned", {"reason": "unsigned", "n": -1})  # a new window: told at once
    assert told[-1][1] == {"reason": "unsigned", "n": -1}
    for i in range(MAX_KEYS * 4):  # reasons are bounded too
        th.report(f"r{i}", {"reason": i})
    assert len(th._windows) <= MAX_KEYS + 1


def test_cached_documents_are_found_by_a_subject_in_any_alphabet(tmp_path: Path) -> None:
    cache = LinkCache(tmp_path / "store.db")
    cache.store("consent", "all", 1, b'{"rows":[{"subject":"Zo\\u00eb M\\u00fcller"}]}')
    cache.store("orders", "all", 1, '{"rows":[{"first_name":"山田"}]}'.encode())
    cache.store("appointments", "all", 1, b'{"rows":[{"first_name":"Zoe"}]}')
    cache.store("cmd", "device", 1, b'{"args":{"subject":"Zoe"}}')  # never kept
    assert cache.erase_subject({"Zoë Müller"}) == 1
    assert cache.erase_subject({"山田"}) == 1
    assert cache.document("consent", "all") == b""
    assert cache.document("orders", "all") == b""
    assert cache.document("appointments", "all") == b'{"rows":[{"first_name":"Zoe"}]}'
    assert cache.document("cmd", "device") is None
    assert cache.applied()[("cmd", "device")] == 1
