"""Attribution: which online campaign brought a visit, and which events belong to it.

Events that carry a campaign say so at the top level (`campaign`: the utm_campaign of a
scanned or tapped link, or the content page's campaign at the kiosk). A visit is an opted-in
shopper app's presence, from enter to exit, known only by the app's own identifier: while
exactly one such visit is at the kiosk (zone "immediate", else the only one "near"), taps,
scans, check-ins and kiosk events are linked to it (`visit`), and the first campaign seen in
the visit becomes the visit's (`visit_campaign`), named by every later event of it — the exit
included. Nothing is guessed when two apps are equally close. A till's sale or redemption is
linked to the visit at the kiosk, else to the only app visit open in the store; its campaign
is the redeemed offer's. A visit in which a pickup was checked in at the kiosk marks its
till events `visit_pickup` (the pickup add-on sales: what a click-and-collect shopper bought
besides the order).

While staff mode is open on the kiosk (its "enter" without a "leave" yet, no shopper's kiosk
event since, for at most STAFF_MODE_MAX_S), taps and scans are a staff member testing the
readers: they are marked `staff_test` (KPIs count them apart, agent/kpi_metrics.py) and linked to no
visit or campaign.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts.events import (
    BLE_PRESENCE,
    KIOSK_CHECKIN,
    KIOSK_PREFIX,
    KIOSK_STAFF,
    NFC_TAP,
    OFFER_PREFIX,
    POS_PREFIX,
    QR_SCAN,
)
from agent.envelope import new_id

# what a visit links: taps, scans, every kiosk event, and the tills' sales and redemptions
# (a family prefix, matched as one)
TILL = (POS_PREFIX, OFFER_PREFIX)
LINKED = (NFC_TAP, QR_SCAN, KIOSK_PREFIX, *TILL)
# a kiosk that died in staff mode sends no "leave": past this, reads are a shopper's again
STAFF_MODE_MAX_S: Final = 30 * 60
PICKED_UP: Final = ("pickup.ok", "pickup.ready")  # a pickup check-in's confirmed outcomes


@dataclass
class Visit:
    id: str
    app: str
    started: float
    zone: str
    campaign: str | None = None
    pickup: bool = False  # a pickup was checked in at the kiosk during it


def campaign_of(event_type: str, data: dict[str, Any]) -> str | None:
    if event_type == QR_SCAN:
        value = (data.get("utm") or {}).get("campaign")
        if data.get("class") == "offer":  # a signed offer code names its campaign
            value = data.get("campaign")
    elif event_type == NFC_TAP:
        value = next(((r.get("utm") or {}).get("campaign") for r in data.get("records") or []
                      if isinstance(r, dict) and (r.get("utm") or {}).get("campaign")), None)
    elif event_type.startswith((KIOSK_PREFIX, *TILL)):
        value = data.get("campaign")
    else:
        value = None
    return str(value)[:100] if value else None


class Visits:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.open: dict[str, Visit] = {}
        self.staff_since: float | None = None  # staff mode open on the kiosk since
        self._lock = threading.Lock()

    def _at_till(self) -> Visit | None:
        """A sale is made away from the kiosk: the visit at the kiosk if there is one, else
        the only app visit open in the store (none when two shoppers with the app are in)."""
        at_kiosk = self._at_kiosk()
        if at_kiosk is not None or len(self.open) != 1:
            return at_kiosk
        return next(iter(self.open.values()))

    def _at_kiosk(self) -> Visit | None:
        for zones in (("immediate",), ("immediate", "near")):
            close = [v for v in self.open.values() if v.zone in zones]
            if len(close) == 1:
                return close[0]
            if len(close) > 1:
                return None  # two apps equally close: do not guess
        return None

    def observe(self, event_type: str, data: Any) -> Any:
        """The event's data with campaign and visit added where they apply."""
        if not isinstance(data, dict):
            return data
        with self._lock:
            if event_type == BLE_PRESENCE and data.get("kind") == "app":
                return self._presence(data)
            if not event_type.startswith(LINKED):
                return data
            if self._staff_test(event_type, data):
                return {**data, "staff_test": True}
            out = dict(data)
            campaign = campaign_of(event_type, data)
            if campaign:
                out["campaign"] = campaign
            visit = self._at_till() if event_type.startswith(TILL) else self._at_kiosk()
            if visit is not None:
                if campaign and visit.campaign is None:
                    visit.campaign = campaign
                out["visit"] = visit.id
                if visit.campaign:
                    out["visit_campaign"] = visit.campaign
                if event_type == KIOSK_CHECKIN and data.get("kind") == "pickup" \
                        and data.get("outcome") in PICKED_UP:
                    visit.pickup = True
                if visit.pickup and event_type.startswith(TILL):
                    out["visit_pickup"] = True
            return out

    def _staff_test(self, event_type: str, data: dict[str, Any]) -> bool:
        """Whether a tap or scan is a staff member's reader test; follows staff mode."""
        if event_type == KIOSK_STAFF:
            if data.get("action") == "enter":
                self.staff_since = self.clock()
            elif data.get("action") == "leave":
                self.staff_since = None
            return False
        if event_type.startswith(KIOSK_PREFIX):
            self.staff_since = None  # a shopper at the kiosk: staff mode is over
            return False
        if event_type not in (NFC_TAP, QR_SCAN) or self.staff_since is None:
            return False
        if self.clock() - self.staff_since > STAFF_MODE_MAX_S:
            self.staff_since = None
            return False
        return True

    def forget(self, subject: str) -> int:
        """Drop the open visit of an app identifier (erasure); how many were dropped."""
        with self._lock:
            return 1 if self.open.pop(subject, None) is not None else 0

    def _presence(self, data: dict[str, Any]) -> dict[str, Any]:
        app, action = str(data.get("id")), data.get("action")
        visit = self.open.get(app)
        if action == "enter" or visit is None:
            visit = Visit(new_id(), app, self.clock(), str(data.get("zone") or "far"))
            self.open[app] = visit
        elif data.get("zone"):
            visit.zone = str(data["zone"])
        out = {**data, "visit": visit.id}
        if visit.campaign:
            out["visit_campaign"] = visit.campaign
        if action == "exit":
            del self.open[app]
        return out
