"""Personal offers end to end: a signed `offers` document over a real broker, the real agent
keeping each offer under the app's keyed hash, and the real kiosk (Pilot) on its bus showing
the one opted-in app at the kiosk its offer on the home screen, without a name, recorded as a
personalised view; nothing when two apps are equally close, nothing for an app whose consent
is withdrawn, and the offer taken off once consent is withdrawn while the app is there; and
the same with the phones heard by bleak over the fake BlueZ."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.contracts.offers import OffersError, parse_offers
from agent.storedb import StoreDatabase
from agent.storelink.cache import LinkCache
from drivers.ble.models import IBeacon
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.settings import load_settings
from simulators.bluez_player import FakeBlueZThread, play
from simulators.fake_bluez import PrivateBus
from simulators.floor import StoreFloor, Walker
from simulators.scenario.shopper import ShopperError, until
from tests.conftest import AgentProcess, wait_for
from tests.integration.conftest import Subscriber
from tests.integration.test_storelink import doc, linked_agent, publish

APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
ANNA = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:100:1"  # opted in, has an offer
BEN = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:100:2"  # withdrew consent, has an offer
CARL = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:100:3"  # opted in, no offer
DORA = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:100:4"  # opted in, has an offer, not here
OFFERS = {"offers": [
    {"subject": ANNA, "offer": "coffee-10", "campaign": "autumn",
     "text": {"en": "10 % off your next coffee", "de": "10 % auf Ihren nächsten Kaffee"}},
    {"subject": BEN, "offer": "jacket-20", "campaign": "winter",
     "text": {"en": "20 % off a rain jacket"}},
    {"subject": DORA, "offer": "tea-5", "text": {"en": "5 % off tea"}}]}
TOPIC = "o2o/v1/store-1/all/"
SIZE = (120, 44)


def presence(app: str, action: str, zone: str = "") -> dict[str, Any]:
    """What the agent's BLE source makes of the app's advertising (agent/presence/)."""
    data: dict[str, Any] = {"id": app, "kind": "app", "action": action, "at": 0.0}
    if zone:
        data["zone"] = zone
    return {"type": "o2o.ble.presence", "data": data}


def offer_of(tmp_path: Path, app: str) -> Any:
    with BusClient(tmp_path / "agent.sock") as bus:
        return bus.request({"op": "personal-offer", "id": app})["offer"]


def applied(tmp_path: Path) -> bool:
    """Anna's offer is there and Ben's withdrawal too (his offer is in the same document)."""
    return offer_of(tmp_path, ANNA) is not None and offer_of(tmp_path, BEN) is None


def test_the_one_opted_in_app_at_the_kiosk_sees_its_offer(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess],
        subscribers: list[Subscriber]) -> None:
    upstream = Subscriber(mosquitto.url, "o2o/v1/store-1/dev-1/events", "collector")
    subscribers.append(upstream)
    assert upstream.connected.wait(10)
    cfg, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    publish(mosquitto, TOPIC + "consent", doc("consent", 1, {"mode": "snapshot", "rows": [
        {"subject": ANNA, "state": "granted"}, {"subject": BEN, "state": "withdrawn"}]}))
    publish(mosquitto, TOPIC + "offers", doc("offers", 1, OFFERS))
    # documents of two kinds are applied each in its own turn: wait for both
    wait_for(lambda: applied(tmp_path), 20,
             what=lambda: f"the offers and consent applied: {agent.status()['link']}")
    assert offer_of(tmp_path, CARL) is None
    shown: list[str] = []

    async def run() -> None:
        app = KioskApp(load_settings(str(cfg)))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            home = app.screen
            assert isinstance(home, AttractScreen)

            def slide() -> str:
                return " / ".join(str(home.query_one(f"#slide-{w}").render())
                                  for w in ("title", "text"))

            def emit(*events: dict[str, Any]) -> None:
                with BusClient(tmp_path / "agent.sock") as bus:
                    bus.emit(list(events))

            emit(presence(ANNA, "enter", "far"))  # in the store, not at the kiosk
            await asyncio.sleep(0.5)
            assert "Just for you" not in slide()
            emit(presence(ANNA, "zone", "near"))
            await until(pilot, lambda: "Just for you" in slide(), what="the offer")
            shown.append(slide())
            # Carl comes as close: either could read it, so nobody's offer is shown
            emit(presence(CARL, "enter", "near"))
            await until(pilot, lambda: "Just for you" not in slide(), what="no offer")
            emit(presence(CARL, "zone", "far"))  # Anna is the closest again
            await until(pilot, lambda: "Just for you" in slide(), what="the offer again")
            emit(presence(ANNA, "exit"), presence(CARL, "exit"))
            await until(pilot, lambda: "Just for you" not in slide(), what="gone with Anna")
            # Ben withdrew his consent: the agent sends none of his presence, shows nothing
            emit(presence(BEN, "enter", "immediate"))
            await asyncio.sleep(1.0)
            assert "Just for you" not in slide() and not app.personal.nearby.zones
            # Anna withdraws while at the kiosk: the offer goes at the kiosk's next ask
            emit(presence(ANNA, "enter", "immediate"))
            await until(pilot, lambda: "Just for you" in slide(), what="Anna back")
            await asyncio.to_thread(
                publish, mosquitto, TOPIC + "consent", doc("consent", 2, {
                    "mode": "increment", "rows": [{"subject": ANNA, "state": "withdrawn"}]}))
            await until(pilot, lambda: "Just for you" not in slide(), timeout=20,
                        what="the offer taken off after the withdrawal")
            await asyncio.sleep(0.3)
    asyncio.run(run())
    assert shown == ["Just for you / 10 % off your next coffee"]
    assert offer_of(tmp_path, ANNA) is None

    def views() -> list[dict[str, Any]]:
        with upstream.lock:
            return [e["data"] for e in upstream.events.values()
                    if e["type"] == "o2o.kiosk.view"]
    wait_for(lambda: len(views()) == 3, 20, what=lambda: f"views upstream: {views()}")
    assert agent.stop() == 0
    events = list(upstream.events.values())
    assert [(v["page"], v["campaign"], v["personalised"]) for v in views()] == \
        [("coffee-10", "autumn", True)] * 3
    assert all(ANNA not in json.dumps(v) for v in views())  # the view names no app
    assert not [e for e in events if e["type"] == "o2o.ble.presence"
                and e["data"]["id"] == BEN]
    # after a restart the agent answers from the document the link cache kept
    store = StoreDatabase.open(tmp_path / "store.db")
    try:
        raw = LinkCache(store).document("offers", "all")
    finally:
        store.close()
    assert raw is not None and b"coffee-10" in raw
    restarted = AgentProcess(cfg)
    agent_factory.append(restarted)
    restarted.start()
    assert offer_of(tmp_path, ANNA) is None  # withdrawn still
    assert offer_of(tmp_path, CARL) is None
    assert offer_of(tmp_path, DORA) == {"offer": "tea-5", "campaign": "",
                                        "text": {"en": "5 % off tea"}}


def test_an_offers_document_with_problems_names_their_places() -> None:
    bad = {"offers": [
        {"subject": ANNA, "offer": "Coffee 10", "text": {"en": "x"}},
        {"subject": CARL, "offer": "ok", "text": {"de": "nur Deutsch"}},
        {"subject": CARL, "offer": "again", "text": {"en": "twice"}},
        {"subject": BEN, "offer": "ctl", "text": {"en": "bell\x07"}}]}
    try:
        parse_offers(bad)
    except OffersError as exc:
        said = str(exc)
    else:
        raise AssertionError("refused")
    assert "offers[0].offer" in said and "offers[1].text: needs an English text" in said
    assert "offers[2].subject: offers[1] is for it too" in said
    assert "offers[3].text.en: contains control characters" in said


def _walk_up(name: str, minor: int, t0: float) -> Walker:
    """From the door to 0.3 m of the kiosk's reader, a few seconds there, and away."""
    return Walker(name, [(t0 + 1, 8.0, 0.0), (t0 + 4, 0.3, 0.0), (t0 + 11, 0.3, 0.0),
                         (t0 + 12, 8.0, 0.0)],
                  app=IBeacon(APP_UUID, 100, minor, -59), interval_s=0.3, seed=minor)


def test_walked_to_the_kiosk_through_the_fake_bluez(
        bus: PrivateBus, tmp_path: Path, mosquitto: Any,
        agent_factory: list[AgentProcess]) -> None:
    """Anna (opted in) and Ben (withdrawn) walk up to the kiosk together, their phones heard
    by unmodified bleak over the fake BlueZ: the kiosk hears of Anna only, so she is the
    one at the kiosk and sees her offer; Ben's never shows."""
    t0 = 1_795_500_000.0
    floor = StoreFloor(beacons=[], walkers=[_walk_up("anna", 1, t0), _walk_up("ben", 2, t0)],
                       drop_rate=0.05, seed=3)
    with FakeBlueZThread(bus.address) as bluez:
        cfg, agent = linked_agent(
            tmp_path, mosquitto, agent_factory,
            more=f'[ble]\nenabled = true\napp_uuids = ["{APP_UUID}"]\n'
                 f"path_loss_exponent = {floor.path_loss_exponent}\n")
        publish(mosquitto, TOPIC + "consent", doc("consent", 1, {"mode": "snapshot", "rows": [
            {"subject": ANNA, "state": "granted"}, {"subject": BEN, "state": "withdrawn"}]}))
        publish(mosquitto, TOPIC + "offers", doc("offers", 1, OFFERS))
        wait_for(lambda: applied(tmp_path), 20, what="the offers and consent applied")
        wait_for(lambda: agent.status()["ble"]["scanner"]["state"] == "scanning", 30,
                 what="agent scanning")
        seen: list[set[str]] = []

        async def run() -> None:
            app = KioskApp(load_settings(str(cfg)))
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.agent_up, what="agent link up")
                home = app.screen
                walking = asyncio.create_task(asyncio.to_thread(
                    bluez.run, play(bluez.fake, list(floor.adverts(t0, t0 + 12)), origin=t0),
                    120))
                try:
                    await until(pilot, lambda: "10 % off your next coffee" in str(
                        home.query_one("#slide-text").render()), 30, "Anna's offer")
                except ShopperError as exc:
                    heard = app.personal.nearby.zones
                    raise AssertionError(f"{exc}; the kiosk heard {heard}, the agent: "
                                         f"{agent.status()['ble']}") from None
                seen.append(set(app.personal.nearby.zones))
                await walking
        asyncio.run(run())
    assert seen == [{ANNA}]  # Ben's presence never reached the kiosk
