"""The tills' rules on a real store.db: every bad field named, a receipt counted once, the
same receipt with another body a conflict, offers redeemed once (after a reopen too), and
loyalty cards and code ids only as keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.keys import public_key_text
from agent.pos import PosLedger, PosService
from agent.storedb import StoreDatabase
from drivers.qr.offer import make_code

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000.0


def key_of(subject: str) -> str:
    return hmac.new(b"k" * 32, subject.encode(), hashlib.sha256).hexdigest()


class Tills:
    def __init__(self, path: Path) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.store = StoreDatabase.open(path)
        self.service = PosService(PosLedger(self.store, clock=lambda: NOW), "store-1",
                                  lambda: [public_key_text(KEY.public_key())], key_of,
                                  self.capture, clock=lambda: NOW)

    def capture(self, event_type: str, data: Any) -> Future[Any]:
        self.events.append((event_type, data))
        done: Future[Any] = Future()
        done.set_result([])
        return done

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


def offer(code_id: str = "C-1", **kw: Any) -> str:
    args: dict[str, Any] = {"campaign": "spring", "text_id": "coffee-20",
                            "expires": int(NOW) + 3600, "stores": ("store-1",)}
    args.update(kw)
    return make_code(KEY, code_id, **args)


SALE = {"receipt": "R-1", "total": 1250, "currency": "EUR", "payment": "card",
        "lines": [{"sku": "COF-1", "gtin": "4006381333931", "qty": 2, "amount": 900},
                  {"sku": "CAKE", "qty": 1}]}


def test_every_bad_field_is_named(tmp_path: Path) -> None:
    t = Tills(tmp_path / "store.db")
    bad = {"receipt": "", "total": 12.5, "currency": "eur", "payment": "iou",
           "lines": [{"qty": 0}, {"sku": "A", "gtin": "4006381333932", "qty": 1, "x": 1}, 7],
           "loyalty": "\u0000", "offers": ["ok", 3], "extra": True}
    a = t.service.handle("till-1", "sale", bad)
    assert a.status == 422 and a.body["ok"] is False
    fields = [e["field"] for e in a.body["errors"]]
    assert fields == ["extra", "receipt", "total", "currency", "payment", "lines[0]",
                      "lines[0].qty", "lines[1].x", "lines[1].gtin", "lines[2]", "loyalty",
                      "offers[1]"]
    assert all(e["error"] for e in a.body["errors"])
    assert t.service.handle("till-1", "sale", [1, 2]).body["errors"] == [
        {"field": "", "error": "the body must be a JSON object"}]
    assert t.events == []  # nothing recorded for a refused request


def test_a_receipt_is_counted_once_and_another_body_under_it_is_a_conflict(
        tmp_path: Path) -> None:
    t = Tills(tmp_path / "store.db")
    first = t.service.handle("till-1", "sale", {**SALE, "loyalty": "LOY0012345678"})
    assert first.status == 200 and first.body == {"ok": True, "receipt": "R-1",
                                                  "action": "sale"}
    again = t.service.handle("till-1", "sale", {**SALE, "loyalty": "LOY0012345678"})
    assert (again.status, again.body, again.replayed) == (200, first.body, True)
    conflict = t.service.handle("till-1", "sale", {**SALE, "total": 999})
    assert conflict.status == 409 and conflict.body["reason"] == "receipt-conflict"
    assert conflict.body["errors"][0]["field"] == "receipt"
    assert t.types() == ["o2o.pos.sale"]
    sale = t.events[0][1]
    assert sale["loyalty"] == key_of("loyalty:LOY0012345678")
    assert "LOY0012345678" not in str(t.events)
    # the same receipt id at another till is that till's own receipt
    assert not t.service.handle("till-2", "sale", SALE).replayed
    refund = t.service.handle("till-1", "refund", {**SALE, "receipt": "R-9",
                                                   "original": "R-1"})
    assert refund.status == 200 and t.types()[-1] == "o2o.pos.refund"
    assert t.service.handle("till-1", "refund", {**SALE, "offers": [offer()]}).status == 422


def test_an_offer_is_redeemed_once_across_a_reopen(tmp_path: Path) -> None:
    t = Tills(tmp_path / "store.db")
    code = offer()
    assert t.service.handle("till-1", "offer-check", {"code": code}).body["state"] == "valid"
    a = t.service.handle("till-1", "sale", {**SALE, "offers": [code]})
    assert a.body["offers"] == [{"index": 0, "state": "redeemed", "campaign": "spring",
                                 "offer": "coffee-20"}]
    assert t.types() == ["o2o.pos.sale", "o2o.offer.redeemed"]
    sale, redeemed = t.events[0][1], t.events[1][1]
    assert sale["campaign"] == "spring" and sale["offers"] == [key_of("offer:C-1")]
    assert redeemed == {"code": key_of("offer:C-1"), "campaign": "spring",
                        "offer": "coffee-20", "receipt": "R-1", "pos": "till-1"}
    t.store.close()
    t = Tills(tmp_path / "store.db")  # a restart: the ledger is in the file
    used = t.service.handle("till-2", "sale", {**SALE, "receipt": "R-2", "offers": [code]})
    assert used.body["offers"][0]["state"] == "refused"
    assert used.body["offers"][0]["reason"] == "offer-used"
    assert t.types() == ["o2o.pos.sale", "o2o.offer.refused"]
    check = t.service.handle("till-1", "offer-check", {"code": code})
    assert check.status == 409 and check.body["reason"] == "offer-used"
    # the kiosk's camera hears the same
    scan = t.service.on_scan("o2o.qr.scan", {"class": "offer", "code": "C-1",
                                             "campaign": "spring", "offer": "coffee-20"})
    assert scan["class"] == "rejected" and scan["reason"] == "offer-used"
    assert scan["code"] == key_of("offer:C-1")


def test_redeem_is_idempotent_per_code_and_receipt_and_refuses_the_rest(
        tmp_path: Path) -> None:
    t = Tills(tmp_path / "store.db")
    code = offer("C-2")
    first = t.service.handle("till-1", "offer-redeem", {"code": code, "receipt": "R-5"})
    assert first.status == 200 and first.body["state"] == "redeemed"
    again = t.service.handle("till-1", "offer-redeem", {"code": code, "receipt": "R-5"})
    assert again.replayed and again.body == first.body
    other = t.service.handle("till-1", "offer-redeem", {"code": code, "receipt": "R-6"})
    assert other.status == 409 and other.body["reason"] == "offer-used"
    # the sale of the receipt that redeemed it names it, without a second redemption
    sale = t.service.handle("till-1", "sale", {**SALE, "receipt": "R-5", "offers": [code]})
    assert sale.body["offers"][0]["state"] == "redeemed"
    assert t.types().count("o2o.offer.redeemed") == 1
    for text, why in ((offer("C-3", expires=int(NOW) - 1), "offer-expired"),
                      (offer("C-4", stores=("store-2",)), "offer-other-store"),
                      (make_code(Ed25519PrivateKey.generate(), "C-5", "x", "y",
                                 int(NOW) + 60), "offer-unknown-key"),
                      ("O2OF1:AAAA", "offer-malformed")):
        a = t.service.handle("till-1", "offer-redeem", {"code": text, "receipt": "R-7"})
        assert (a.status, a.body["reason"]) == (422, why)
        assert a.body["errors"][0]["field"] == "code"
    refused = [d["reason"] for ty, d in t.events if ty == "o2o.offer.refused"]
    assert refused == ["offer-used", "offer-expired", "offer-other-store",
                       "offer-unknown-key", "offer-malformed"]


def test_events_a_stop_cut_off_are_sent_at_the_next_start(tmp_path: Path) -> None:
    t = Tills(tmp_path / "store.db")
    stuck: Future[Any] = Future()  # the outbox never answers: the agent stopped
    t.service.capture = lambda ty, d: stuck
    t.service.handle("till-1", "sale", SALE)
    t.store.close()
    t = Tills(tmp_path / "store.db")
    assert t.service.resend_pending() == 1 and t.types() == ["o2o.pos.sale"]
    t.service.flush_sent()  # what the stop does (else the next request)
    assert t.service.resend_pending() == 0  # marked sent once committed
    t.service.handle("till-1", "sale", {**SALE, "receipt": "R-2"})
    assert [r[:3] for r in t.service.ledger.pending()] == [("till-1", "R-2", "sale")]
    t.service.handle("till-1", "sale", {**SALE, "receipt": "R-3"})  # marks R-2 sent
    assert [r[:3] for r in t.service.ledger.pending()] == [("till-1", "R-3", "sale")]


def test_two_tills_at_once_redeem_a_code_once(tmp_path: Path) -> None:
    """Tills (and kiosks) share the agent's ledger: of eight racing redemptions of one code
    under different receipts, exactly one succeeds."""
    import threading

    t = Tills(tmp_path / "store.db")
    code = offer("C-RACE")
    start = threading.Barrier(8)
    answers: list[int] = []
    lock = threading.Lock()

    def till(i: int) -> None:
        start.wait()
        a = t.service.handle(f"till-{i}", "offer-redeem", {"code": code, "receipt": f"R-{i}"})
        with lock:
            answers.append(a.status)

    threads = [threading.Thread(target=till, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(answers) == [200] + [409] * 7
    assert t.types().count("o2o.offer.redeemed") == 1
