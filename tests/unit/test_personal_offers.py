"""Personal offers kept by the agent: under the keyed hash of the app's identifier only, this
device's document before the store's, none for a withdrawn app or after the document
expired, and gone with an erasure or the retention sweep. And which app the kiosk takes as
the one at it."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from agent.errors import AgentError
from agent.personal_offers import PersonalOffers
from agent.storelink.docs import Doc, DocRefused
from kiosk.app import KioskApp
from kiosk.nearby import NearbyApps
from kiosk.screens.attract import AttractScreen
from kiosk.settings import KioskSettings
from kiosk.stats import TodayStats
from simulators.scenario.shopper import until

NOW = 1_800_000_000.0


def key_of(subject: str) -> str:
    return hashlib.sha256(b"device-key" + subject.encode()).hexdigest()


def offers_doc(device: str, rows: list[dict[str, Any]], expires: float = NOW + 60) -> Doc:
    return Doc(kind="offers", store="s1", device=device, version=1, issued=NOW,
               expires=expires, body={"offers": rows}, key_id="k")


def row(subject: str, offer: str) -> dict[str, Any]:
    return {"subject": subject, "offer": offer, "text": {"en": f"{offer} for you"}}


@pytest.fixture
def offers() -> PersonalOffers:
    withdrawn: set[str] = set()
    po = PersonalOffers(key_of, lambda: withdrawn, clock=lambda: NOW)
    po.withdrawn_set = withdrawn  # type: ignore[attr-defined]
    return po


def test_kept_by_keyed_hash_device_first_none_when_withdrawn(offers: PersonalOffers) -> None:
    offers.apply(offers_doc("all", [row("app:a", "store-wide"), row("app:b", "b-offer")]))
    offers.apply(offers_doc("dev-1", [row("app:a", "this-kiosk")]))
    assert offers.offer_for("app:a") == {"offer": "this-kiosk", "campaign": "",
                                         "text": {"en": "this-kiosk for you"}}
    assert offers.offer_for("app:b")["offer"] == "b-offer"  # type: ignore[index]
    assert "app:a" not in repr(offers._docs)  # no identifier kept, only its keyed hash
    offers.withdrawn_set.add(key_of("app:b"))  # type: ignore[attr-defined]
    assert offers.offer_for("app:b") is None
    assert offers.op({"id": "app:b"}) == {"ok": True, "offer": None}
    with pytest.raises(AgentError, match="personal-offer takes"):
        offers.op({"id": ["app:a"]})


def test_an_expired_document_offers_nothing(offers: PersonalOffers) -> None:
    offers.apply(offers_doc("all", [row("app:a", "old")], expires=NOW - 1))
    assert offers.offer_for("app:a") is None


def test_erasure_and_retention(offers: PersonalOffers) -> None:
    offers.apply(offers_doc("all", [row("app:a", "x"), row("app:b", "y")]))
    assert offers.erase_rows_of("app:a") == {"personal_offers": 1}
    assert offers.offer_for("app:a") is None and offers.offer_for("app:b") is not None
    assert offers.retention_sweep(NOW + 1) == {"personal_offer_docs": 1}
    assert offers.offer_for("app:b") is None


def test_a_bad_document_is_refused_by_place(offers: PersonalOffers) -> None:
    with pytest.raises(DocRefused, match=r"offers\[0\]\.text: needs an English text"):
        offers.apply(offers_doc("all", [{"subject": "app:a", "offer": "x",
                                         "text": {"de": "nur"}}]))


def presence(app: str, action: str, zone: str = "", kind: str = "app") -> Any:
    return {"type": "o2o.ble.presence",
            "data": {"id": app, "kind": kind, "action": action, "zone": zone}}


def test_the_app_at_the_kiosk_is_the_one_clearly_closest() -> None:
    near = NearbyApps()
    assert near.observe(presence("a", "enter", "far")) and near.one_at_kiosk() is None
    assert near.observe(presence("a", "zone", "near")) and near.one_at_kiosk() == "a"
    assert not near.observe(presence("a", "zone", "near"))  # nothing changed
    near.observe(presence("b", "enter", "near"))
    assert near.one_at_kiosk() is None  # equally close: nobody's offer
    near.observe(presence("b", "zone", "immediate"))
    assert near.one_at_kiosk() == "b"
    near.observe(presence("b", "exit"))
    assert near.one_at_kiosk() == "a"
    assert not near.observe(presence("door", "enter", "near", kind="beacon"))
    assert not near.observe({"type": "o2o.nfc.tap", "data": {}})


def test_staff_todays_views_leave_the_personal_offers_out() -> None:
    today = TodayStats(clock=lambda: NOW)
    for personal in (True, False, False):
        data = {"page": "p", "personalised": True} if personal else {"page": "p"}
        today.add({"type": "o2o.kiosk.view", "data": data})
    assert today.total("views") == 2


def test_a_personal_offer_counts_as_shown_only_on_the_home_screen() -> None:
    """An app at the kiosk while a shopper reads a card: its offer is not in front of anyone
    until the kiosk is home again, and counts once then."""
    sent: list[tuple[str, Any]] = []
    offer = {"offer": "coffee-10", "campaign": "autumn", "text": {"en": "10 % off"}}

    async def run() -> None:
        app = KioskApp(KioskSettings(), connect=False)
        app.record = lambda t, d: sent.append((t, d))  # type: ignore[method-assign]

        async def answer(msg: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True, "offer": offer}
        app.link.request = answer  # type: ignore[method-assign]
        async with app.run_test(size=(120, 44)) as pilot:
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            app.personal.nearby.observe(presence("app:a", "enter", "near"))
            app.ask_personal_offer()
            await until(pilot, lambda: app.personal.shown is not None, what="the offer")
            assert not [d for t, d in sent if d.get("personalised")]  # under the card
            app.home()  # the survey after browsing comes first; its end is home
            await pilot.pause()
            app.home()
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), what="home")
            app.home()  # again: still the one time it was shown
    asyncio.run(run())
    assert [d["page"] for _, d in sent if d.get("personalised")] == ["coffee-10"]


def test_an_app_not_heard_of_for_half_an_hour_is_forgotten() -> None:
    """An erased app's track ends without an exit: it must not stand beside the next
    shopper as "equally close" for ever."""
    now = [0.0]
    near = NearbyApps(clock=lambda: now[0])
    near.observe(presence("erased", "enter", "near"))
    now[0] = 1000.0
    near.observe(presence("next", "enter", "near"))
    assert near.one_at_kiosk() is None  # two equally close
    now[0] = 1800.0
    assert near.one_at_kiosk() == "next" and "erased" not in near.zones
