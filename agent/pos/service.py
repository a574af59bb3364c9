"""The tills' requests answered: a sale or a refund recorded once per receipt, offer codes
checked and redeemed once, and the events that say so.

Each request is decided in one store.db transaction (ledger.py) and its events are handed to
the outbox with the decision stored as pending; the answer goes back once the outbox has
committed them (`Answer.commits`). The receipt's events are marked sent with the next
request's transaction (or at the stop): a second fsync on every sale's way would double its
latency. A receipt sent again gets the stored answer and changes nothing; the same receipt id
with another body is a conflict (409). Events not marked sent when the agent stopped (a cut
between the decision and the commit, or a kill before the marking) are sent again at the next
start (`resend_pending`): at least once, as everything upstream.

Loyalty cards and offer code ids never leave as they are: a keyed hash under the device's
key (agent/consent.py key_of), prefixed by what they are so that one never matches another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.contracts.bus import PosReply
from agent.contracts.events import (
    OFFER_REDEEMED,
    OFFER_REFUSED,
    POS_REFUND,
    POS_SALE,
    QR_SCAN,
    OfferRedeemed,
    OfferRefused,
    PosSale,
)
from agent.contracts.pos import ACTIONS, FieldError, Sale, check_offer_request, check_sale
from agent.contracts.status import PosEndpointStatus, PosStatus
from agent.errors import AgentError, Reason
from agent.keys import parse_public_key
from agent.pos.ledger import Events, Key, PosLedger
from drivers.qr.offer import Offer, OfferError, verify_code

log = logging.getLogger(__name__)

TILL = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
Capture = Callable[[str, Any], "Future[Any]"]
# why an offer is refused, as the till and the kiosk are told (the codes of drivers/qr/offer.py)
OFFER_WORDS = {
    "offer-used": "this offer was already redeemed",
    "offer-expired": "this offer has expired",
    "offer-other-store": "this offer is not valid in this store",
    "offer-bad-signature": "this is not a genuine offer code (the signature does not match)",
    "offer-unknown-key": "this offer code was signed with a key this store does not know",
    "offer-malformed": "this is not an offer code",
}


class Endpoint(Protocol):
    """What the status reads of the tills' HTTP endpoint (agent/pos/http.py PosEndpoint)."""

    counts: dict[str, int]
    bound: list[tuple[str, int]]


class Answer(NamedTuple):
    """What to tell the till: the HTTP status and body, and the outbox commits to wait for
    before telling it (empty for a replay or a refusal that records nothing)."""

    status: int
    body: dict[str, Any]
    commits: list[Future[Any]]
    replayed: bool = False


def _refusal(status: int, errors: list[FieldError], reason: str = "invalid-request",
             ) -> Answer:
    return Answer(status, {"ok": False, "reason": reason, "errors": errors}, [])


def record(event_type: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An event to record with the decision (sent once the decision is stored)."""
    return event_type, dict(data)


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


class PosService:
    def __init__(self, ledger: PosLedger, store: str, offer_keys: Callable[[], Sequence[str]],
                 key_of: Callable[[str], str], capture: Capture,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.store = store
        self._offer_keys = offer_keys
        self._parsed: tuple[tuple[str, ...], list[Ed25519PublicKey]] = ((), [])
        self._key_of = key_of
        self.capture = capture
        self.clock = clock
        self._lock = threading.Lock()
        self._sent: list[Key] = []  # receipts whose events are committed, to mark
        self.counts = {"sales": 0, "refunds": 0, "replayed": 0, "conflicts": 0,
                       "refused": 0, "offers_redeemed": 0, "offers_refused": 0}

    def status(self, endpoint: Endpoint | None = None) -> PosStatus:
        """The status document's pos section (counts in memory: it is built on the loop)."""
        with self._lock:
            c = dict(self.counts)
        out = PosStatus(sales=c["sales"], refunds=c["refunds"], replayed=c["replayed"],
                        conflicts=c["conflicts"], refused=c["refused"],
                        offers_redeemed=c["offers_redeemed"],
                        offers_refused=c["offers_refused"])
        if endpoint is not None:
            e = dict(endpoint.counts)
            out["endpoint"] = PosEndpointStatus(
                listening=[f"{h}:{p}" for h, p in endpoint.bound], requests=e["requests"],
                unauthorized=e["unauthorized"], limited=e["limited"],
                too_large=e["too_large"], slow_clients=e["slow_clients"])
        return out

    # --- helpers ----------------------------------------------------------------------------

    def keys(self) -> list[Ed25519PublicKey]:
        """The configured offer keys, parsed once per change of [qr] offer_public_keys."""
        texts = tuple(self._offer_keys())
        if texts != self._parsed[0]:
            self._parsed = (texts, [parse_public_key(k) for k in texts])
        return self._parsed[1]

    def code_hash(self, code_id: str) -> str:
        return self._key_of(f"offer:{code_id}")

    def verify(self, code: str) -> Offer:
        return verify_code(code, self.keys(), self.clock(), self.store)

    def _emit(self, events: Events, key: Key | None = None) -> list[Future[Any]]:
        """Hand the events to the outbox; once all of them are committed, `key`'s receipt is
        queued to be marked sent (on the writer's thread: only a list append there)."""
        futures = [self.capture(t, d) for t, d in events]
        if key is not None and futures:
            left = [len(futures)]

            def one(f: Future[Any]) -> None:
                if f.cancelled() or f.exception() is not None:
                    return  # left pending: sent again at the next start
                with self._lock:
                    left[0] -= 1
                    if left[0] == 0:
                        self._sent.append(key)

            for f in futures:
                f.add_done_callback(one)
        return futures

    def _take_sent(self) -> list[Key]:
        with self._lock:
            sent, self._sent = self._sent, []
        return sent

    def flush_sent(self) -> None:
        """Mark what is committed as sent (at the stop; requests do it as they come)."""
        sent = self._take_sent()
        try:
            self.ledger.committed(sent)
        except (sqlite3.Error, OSError):  # sent again at the next start: at least once
            log.warning("could not mark %d till receipts as sent", len(sent), exc_info=True)

    # --- the requests -------------------------------------------------------------------------

    def handle(self, pos: str, action: str, body: Any) -> Answer:
        """One request of till `pos` (authenticated by the caller)."""
        if action in ("sale", "refund"):
            answer = self._sale(pos, action, body)
        elif action == "offer-check":
            answer = self._check(body)
        elif action == "offer-redeem":
            answer = self._redeem(pos, body)
        else:
            answer = _refusal(404, [{"field": "action", "error": f"one of {', '.join(ACTIONS)}"}])
        with self._lock:
            if answer.replayed:
                self.counts["replayed"] += 1
            elif answer.status == 409 and answer.body.get("reason") == "receipt-conflict":
                self.counts["conflicts"] += 1
            elif answer.status >= 400 and answer.body.get("reason") == "invalid-request":
                self.counts["refused"] += 1
        return answer

    def _settle(self, pos: str, receipt: str, action: str, checked: Any,
                decide: Callable[[sqlite3.Connection], tuple[int, dict[str, Any], Events]],
                ) -> Answer:
        sha = _sha256(checked)
        sent = self._take_sent()
        try:
            stored, status, body, events = self.ledger.settle(pos, receipt, action, sha,
                                                              decide, sent)
        except BaseException:
            with self._lock:  # not marked: the next request marks them
                self._sent[:0] = sent
            raise
        if stored is not None:  # a replay marked nothing
            with self._lock:
                self._sent[:0] = sent
        if stored is not None:
            if stored.body_sha256 != sha:
                return _refusal(409, [{"field": "receipt", "error": f"receipt {receipt} was "
                                       "already sent with a different body: a new sale or "
                                       "refund needs a new receipt id"}], "receipt-conflict")
            return Answer(stored.status, stored.answer, [], replayed=True)
        commits = self._emit(events, (pos, receipt, action))
        return Answer(status, body, commits)

    def _sale(self, pos: str, action: str, body: Any) -> Answer:
        sale, errors = check_sale(body, refund=action == "refund")
        if sale is None:
            return _refusal(422, errors)
        return self._settle(pos, sale["receipt"], action, sale,
                            lambda db: self._decide_sale(db, pos, action, sale))

    def _decide_sale(self, db: sqlite3.Connection, pos: str, action: str, sale: Sale,
                     ) -> tuple[int, dict[str, Any], Events]:
        receipt = sale["receipt"]
        event = PosSale(receipt=receipt, pos=pos, total=sale["total"],
                        currency=sale["currency"], lines=list(sale["lines"]),
                        payment=sale["payment"])
        if "loyalty" in sale:
            event["loyalty"] = self._key_of(f"loyalty:{sale['loyalty']}")
        if "original" in sale:
            event["original"] = sale["original"]
        events: Events = []
        states: list[dict[str, Any]] = []
        redeemed: list[str] = []
        for i, code in enumerate(sale.get("offers", [])):
            state, extra = self._redeem_in(db, pos, receipt, code)
            events.extend(extra.pop("events"))
            states.append({"index": i, "state": state, **extra})
            if state == "redeemed":
                redeemed.append(extra["code"])
                event.setdefault("campaign", extra["campaign"])
        if redeemed:
            event["offers"] = redeemed
        events.insert(0, record(POS_SALE, event) if action == "sale" else
                      record(POS_REFUND, event))
        with self._lock:
            self.counts["sales" if action == "sale" else "refunds"] += 1
        answer: dict[str, Any] = {"ok": True, "receipt": receipt, "action": action}
        if states:
            answer["offers"] = [{k: v for k, v in s.items() if k != "code"} for s in states]
        return 200, answer, events

    def _redeem_in(self, db: sqlite3.Connection, pos: str, receipt: str, code: str,
                   ) -> tuple[str, dict[str, Any]]:
        """Redeem one code with a receipt inside the caller's transaction: ("redeemed", its
        campaign, offer, code hash and the events) or ("refused", the reason, events)."""
        try:
            offer = self.verify(code)
        except OfferError as exc:
            return "refused", {"reason": exc.code, "error": OFFER_WORDS[exc.code],
                               "events": [self._refused(exc.code, pos, receipt)]}
        h = self.code_hash(offer.code_id)
        found = self.ledger.redeemed(db, h)
        what = {"campaign": offer.campaign, "offer": offer.text_id, "code": h}
        if found is not None and (found.pos, found.receipt) != (pos, receipt):
            return "refused", {"reason": "offer-used", "error": OFFER_WORDS["offer-used"],
                               "campaign": offer.campaign,
                               "events": [self._refused("offer-used", pos, receipt, h,
                                                        offer.campaign)]}
        if found is not None:  # redeemed with this very receipt already (offers/redeem)
            return "redeemed", {**what, "events": []}
        self.ledger.redeem(db, h, offer.campaign, offer.text_id, offer.expires, pos, receipt)
        with self._lock:
            self.counts["offers_redeemed"] += 1
        return "redeemed", {**what, "events": [record(OFFER_REDEEMED, OfferRedeemed(
            code=h, campaign=offer.campaign, offer=offer.text_id, receipt=receipt, pos=pos))]}

    def _refused(self, reason: str, pos: str, receipt: str | None = None, code: str | None = None,
                 campaign: str | None = None) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self.counts["offers_refused"] += 1
        event = OfferRefused(reason=reason, pos=pos)
        if receipt:
            event["receipt"] = receipt
        if code:
            event["code"] = code
        if campaign:
            event["campaign"] = campaign
        return record(OFFER_REFUSED, event)

    def _check(self, body: Any) -> Answer:
        req, errors = check_offer_request(body, redeem=False)
        if req is None:
            return _refusal(422, errors)
        try:
            offer = self.verify(req["code"])
        except OfferError as exc:
            return self._offer_refusal(exc.code)
        found = self.ledger.redemption(self.code_hash(offer.code_id))
        if found is not None:
            return self._offer_refusal("offer-used")
        return Answer(200, {"ok": True, "state": "valid", "campaign": offer.campaign,
                            "offer": offer.text_id, "expires": offer.expires}, [])

    @staticmethod
    def _offer_refusal(reason: str) -> Answer:
        return Answer(409 if reason == "offer-used" else 422,
                      {"ok": False, "reason": reason,
                       "errors": [{"field": "code", "error": OFFER_WORDS[reason]}]}, [])

    def _redeem(self, pos: str, body: Any) -> Answer:
        req, errors = check_offer_request(body, redeem=True)
        if req is None:
            return _refusal(422, errors)
        try:
            offer = self.verify(req["code"])
        except OfferError as exc:
            self._emit([self._refused(exc.code, pos, req["receipt"])])
            return self._offer_refusal(exc.code)
        h = self.code_hash(offer.code_id)

        def decide(db: sqlite3.Connection) -> tuple[int, dict[str, Any], Events]:
            state, extra = self._redeem_in(db, pos, req["receipt"], req["code"])
            events = extra.pop("events")
            if state != "redeemed":
                refusal = self._offer_refusal(extra["reason"])
                return refusal.status, refusal.body, events
            return 200, {"ok": True, "state": "redeemed", "campaign": offer.campaign,
                         "offer": offer.text_id, "receipt": req["receipt"]}, events

        # idempotent per code and receipt: a till that resends gets the same answer
        return self._settle(pos, req["receipt"], f"offer-redeem:{h[:32]}", req, decide)

    # --- the kiosk's side and restarts ----------------------------------------------------

    def on_scan(self, event_type: str, data: Any) -> Any:
        """A scanned offer code as the kiosk should take it: the code id replaced by its
        keyed hash, and a code the ledger has redeemed turned into a refusal (offer-used)."""
        if event_type != QR_SCAN or not isinstance(data, dict) or data.get("class") != "offer":
            return data
        out = dict(data)
        h = self.code_hash(str(data.get("code")))
        out["code"] = h
        try:
            found = self.ledger.redemption(h)
        except sqlite3.Error:  # the kiosk says "valid"; the till's redemption still decides
            log.warning("the offer ledger could not be read", exc_info=True)
            return out
        if found is not None:
            out["class"], out["reason"] = "rejected", "offer-used"
        return out

    def resend_pending(self) -> int:
        """Events decided before a stop that the outbox may not have: sent again (at least
        once; upstream knows them by receipt). How many receipts."""
        rows = self.ledger.pending()
        for pos, receipt, action, events in rows:
            self._emit(events, (pos, receipt, action))
        return len(rows)


BUS_TILL = "bus"  # a till on the device itself, when its request names none
BUS_COMMIT_TIMEOUT_S = 10.0


def bus_op(service: PosService) -> Callable[[dict[str, Any]], PosReply]:
    """The bus's "pos" op: runs in one of the bus's worker threads, so it may wait for the
    outbox's commit as the HTTP endpoint does (the bus's clients are local and trusted by
    the socket's permissions: no token)."""

    def op(msg: dict[str, Any]) -> PosReply:
        till = msg.get("till", BUS_TILL)
        if not isinstance(till, str) or not TILL.fullmatch(till):
            raise AgentError(Reason.BUS_PROTOCOL, "till must be a name of 1-32 lowercase "
                             "letters, digits or '-'")
        action = msg.get("action")
        answer = service.handle(till, action if isinstance(action, str) else "",
                                msg.get("request"))
        for f in answer.commits:
            f.result(BUS_COMMIT_TIMEOUT_S)
        return PosReply(ok=True, status=answer.status, answer=answer.body)

    return op
