"""The kiosk app driven with Textual's Pilot against the real agent process on its bus:
content opened by tap, scan and touch with a hand-off QR a phone can read; pickup,
appointment and loyalty check-ins; the survey; language switch; idle reset; agent down and
back; no way out."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from agent.bus.client import BusClient
from agent.checkin import StoreDb
from agent.config import load_config
from drivers.qr.decoders import RobustDecoder
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.checkin import CheckinScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.idle import IdleWarning
from kiosk.screens.result import ResultScreen
from kiosk.screens.survey import SurveyScreen
from kiosk.widgets.agent_banner import AgentBanner
from kiosk.widgets.qr_view import QrView
from simulators.scenario.shopper import until
from tests.conftest import CLI, ROOT, AgentProcess, write_config

SIZE = (120, 44)


class Store:
    def __init__(self, tmp_path: Path, factory: list[AgentProcess], kiosk: str = "") -> None:
        """`kiosk`: more [kiosk] lines for the configuration."""
        self.dir = tmp_path
        self.cfg_path = write_config(tmp_path / "config.toml", url="", device="kiosk-2",
                                     extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
                                           f"{kiosk}")
        db = StoreDb(tmp_path / "store.db")
        db.replace("orders", [{"order_id": "A-1042", "code": "K7Q2M9", "first_name": "Anna",
                               "status": "preparing", "eta_min": 3, "store": "store-1"}])
        db.replace("appointments", [{"appt_id": "P-7", "code": "APPT77", "first_name": "Eva",
                                     "at": time.time() + 7200, "service": "tailor"}])
        db.replace("loyalty", [{"card": "0102030405060708", "first_name": "Gil",
                                "points": 120}])
        db.close()
        self.agent = AgentProcess(self.cfg_path)
        factory.append(self.agent)

    def config(self) -> Any:
        return load_config(str(self.cfg_path))

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        with BusClient(self.dir / "agent.sock") as bus:
            bus.emit([{"type": event_type, "data": data}])

    def events(self) -> list[dict[str, Any]]:
        res = subprocess.run([*CLI, "outbox", "export", "--config", str(self.cfg_path)],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        return [json.loads(line) for line in res.stdout.splitlines()]


@pytest.fixture
def store(tmp_path: Path, agent_factory: list[AgentProcess]) -> Iterator[Store]:
    s = Store(tmp_path, agent_factory)
    s.agent.start()
    yield s


def message_text(app: KioskApp) -> str:
    return str(app.screen.query_one("#message").render())


def decode_qr_view(view: QrView) -> str:
    """Draw the half-block characters as pixels and read them with the project's decoder."""
    px = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}
    rows = []
    for line in view.lines:
        top = [255 - 255 * px[c][0] for c in line]
        bottom = [255 - 255 * px[c][1] for c in line]
        rows += [top, bottom]
    img = np.kron(np.array(rows, dtype=np.uint8), np.ones((8, 8), dtype=np.uint8))
    codes = RobustDecoder().decode(img)
    assert codes, "the hand-off QR code does not decode"
    return codes[0].payload.decode()


def test_tap_opens_content_and_the_handoff_qr_carries_the_visit(store: Store) -> None:
    tokens: list[str] = []

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            store.emit("o2o.nfc.tap", {"tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"},
                                       "records": [], "ndef": "ok"})
            await until(pilot, lambda: isinstance(app.screen, ContentScreen), what="card")
            assert str(app.screen.query_one("#title").render()) == "Autumn coffee blend"
            await pilot.click("#handoff")
            await until(pilot, lambda: bool(app.screen.query(QrView)), what="qr")
            url = decode_qr_view(app.screen.query_one("#handoff-qr", QrView))
            q = parse_qs(urlsplit(url).query)
            tokens.extend(q.pop("o2o_h"))
            assert url.startswith("https://shop.example/p/autumn-coffee?")
            assert q == {"utm_source": ["kiosk"], "utm_medium": ["nfc"],
                         "utm_campaign": ["autumn-coffee"], "utm_content": ["store-1/kiosk-2"]}
            # a scanned product link opens its page too, with medium qr
            store.emit("o2o.qr.scan", {"class": "product", "host": "shop.example",
                                       "path": "/p/rain-jacket", "utm": {}})
            await until(pilot, lambda: isinstance(app.screen, ContentScreen)
                        and app.screen.page.id == "rain-jacket", what="scanned page")
            assert app.screen.medium == "qr"
            # done browsing: the survey, once a session, on the way home
            await pilot.click("#back")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            await pilot.click("#score-4")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), timeout=5)
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#back")  # asked once: straight home this time
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await asyncio.sleep(0.3)  # let the kiosk's events reach the outbox
    asyncio.run(run())
    surveys = [e["data"] for e in store.events() if e["type"] == "o2o.kiosk.survey"]
    assert [(s["score"], s["after"]) for s in surveys] == [(4, "browse")]
    kinds = [(e["type"], e["data"].get("page"), e["data"].get("medium")) for e in store.events()]
    assert ("o2o.kiosk.view", "autumn-coffee", "nfc") in kinds
    assert ("o2o.kiosk.handoff", "autumn-coffee", "nfc") in kinds
    assert ("o2o.kiosk.view", "rain-jacket", "qr") in kinds
    # the link's token is the hand-off event's id: web analytics joins the two
    handoffs = [e for e in store.events() if e["type"] == "o2o.kiosk.handoff"]
    assert [e["id"] for e in handoffs] == tokens and len(tokens[0]) == 26


def test_pickup_by_code_then_survey(store: Store) -> None:
    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up)
            await pilot.click("#go-pickup")
            assert isinstance(app.screen, CheckinScreen)
            for key in "K7Q2M8":
                await pilot.click(f"#key-{key}")
            await pilot.click("#key-clear")
            for key in "K7Q2M9":
                await pilot.click(f"#key-{key}")
            await pilot.click("#key-submit")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen))
            assert message_text(app) == "Thanks, Anna — your order is on its way, about 3 min."
            await pilot.click("#done")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            await pilot.click("#score-5")
            await until(pilot, lambda: bool(app.screen.query("#thanks")))
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), timeout=5)
            await asyncio.sleep(0.3)
    asyncio.run(run())
    events = store.events()
    checkins = [e["data"] for e in events if e["type"] == "o2o.kiosk.checkin"]
    # and which content the shopper's session showed (no A/B test in the sample content)
    assert checkins == [{"kind": "pickup", "outcome": "pickup.ok", "via": "code",
                         "order": "A-1042", "content_version": 1, "variants": {}}]
    surveys = [e["data"] for e in events if e["type"] == "o2o.kiosk.survey"]
    assert surveys[0]["score"] == 5 and surveys[0]["after"] == "pickup.ok"
    assert "Anna" not in json.dumps(events)


def test_scans_and_taps_check_in_with_kind_reasons(store: Store) -> None:
    async def shown_after(pilot: Any, app: KioskApp, event: tuple[str, dict[str, Any]]) -> str:
        before = len(app.shown)
        store.emit(*event)
        await until(pilot, lambda: len(app.shown) > before
                    and isinstance(app.screen, ResultScreen), what=str(event))
        return message_text(app)

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up)
            said = [await shown_after(pilot, app, e) for e in [
                ("o2o.qr.scan", {"class": "pickup", "order": "A-1042"}),
                ("o2o.qr.scan", {"class": "rejected", "reason": "pickup-expired"}),
                ("o2o.nfc.tap", {"tag": {"id": "0102030405060708", "kind": "loyalty"}}),
                ("o2o.qr.scan", {"class": "pickup", "order": "A-9999"}),
            ]]
            app.home()
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await pilot.click("#go-appointment")
            for key in "APPT77":
                await pilot.click(f"#key-{key}")
            await pilot.click("#key-submit")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen))
            said.append(message_text(app))
            await pilot.click("#call-staff")
            await asyncio.sleep(0.3)
        assert said[0] == "Thanks, Anna — your order is on its way, about 3 min."
        assert said[1] == "This pickup code has expired. Our staff will be happy to help."
        assert said[2] == "Welcome back, Gil! You have 120 points."
        assert said[3].startswith("We could not find that code.")
        assert said[4].startswith("Your appointment is at ") and "Eva" in said[4]
    asyncio.run(run())
    assist = [e["data"] for e in store.events() if e["type"] == "o2o.kiosk.assist"]
    assert assist and assist[0]["screen"] == "result"


def test_language_switch_on_every_screen(store: Store) -> None:
    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            async def tap(selector: str) -> None:
                await pilot.click(selector)
                await pilot.pause()

            await tap("#lang-de")
            assert str(app.screen.query_one("#go-pickup").label) == "Bestellung abholen"
            await tap("#go-pickup")
            assert str(app.screen.query_one("#title").render()) == "Bestellung abholen"
            await tap("#lang-es")
            assert str(app.screen.query_one("#title").render()) == "Recoja su pedido"
            await tap("#back")
            assert str(app.screen.query_one("#go-pickup").label) == "Recoger un pedido"
            assert str(app.screen.query_one("#call-staff").label) == "Llamar al personal"
    asyncio.run(run())


def test_idle_warning_can_be_extended_then_the_session_is_wiped(store: Store) -> None:
    now = [1000.0]

    async def run() -> None:
        app = KioskApp(store.config(), clock=lambda: now[0])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.click("#lang-de")
            await pilot.click("#go-pickup")
            await pilot.click("#key-4")
            now[0] += 31  # 31 s without a touch: the warning (idle_s 45, warning 15)
            await app.idle_tick()
            await until(pilot, lambda: isinstance(app.screen, IdleWarning))
            assert "14 Sekunden" in str(app.screen.query_one("#idle-text").render())
            await pilot.click("#stay")
            await until(pilot, lambda: isinstance(app.screen, CheckinScreen))
            assert app.screen.code == "4"  # nothing lost
            now[0] += 31
            await app.idle_tick()
            await until(pilot, lambda: isinstance(app.screen, IdleWarning))
            now[0] += 15
            await app.idle_tick()
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            assert app.translator.language == "en"  # the session is gone, language too
            assert str(app.screen.query_one("#go-pickup").label) == "Pick up an order"
            assert len(app.screen_stack) == 2
            # a tap on the reader is activity too: it answers the warning
            await until(pilot, lambda: app.agent_up)
            store.emit("o2o.nfc.tap", {"tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"}})
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            now[0] += 31
            await app.idle_tick()
            await until(pilot, lambda: isinstance(app.screen, IdleWarning))
            store.emit("o2o.qr.scan", {"class": "product", "host": "shop.example",
                                       "path": "/p/rain-jacket"})
            await until(pilot, lambda: isinstance(app.screen, ContentScreen)
                        and app.screen.page.id == "rain-jacket")
            await app.idle_tick()
            assert app.idle_warning is None and isinstance(app.screen, ContentScreen)
            await asyncio.sleep(0.3)
    asyncio.run(run())
    ended = [e["data"] for e in store.events() if e["type"] == "o2o.kiosk.session"]
    assert ended and ended[0]["ended"] == "idle"


def test_agent_down_then_back(tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory)  # not started yet

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.5)
            banner = app.screen.query_one(AgentBanner)
            assert banner.display and "briefly unavailable" in str(banner.render())
            await pilot.click("#go-pickup")
            for key in "K7Q2M9":
                await pilot.click(f"#key-{key}")
            await pilot.click("#key-submit")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen))
            assert message_text(app).startswith("Check-in is briefly unavailable.")
            await pilot.click("#call-staff")  # kept until the agent is back
            assert app.link.pending >= 1
            await asyncio.to_thread(store.agent.start)
            await until(pilot, lambda: app.agent_up, timeout=20, what="reconnected")
            assert not app.screen.query_one(AgentBanner).display
            await until(pilot, lambda: app.link.pending == 0, what="queued events sent")
    asyncio.run(run())
    assert any(e["type"] == "o2o.kiosk.assist" for e in store.events())


def test_no_way_out(tmp_path: Path) -> None:
    async def run() -> None:
        from agent.config import Config

        app = KioskApp(Config(), connect=False)
        async with app.run_test(size=SIZE) as pilot:
            for key in ("ctrl+q", "ctrl+c", "ctrl+p", "escape", "f1"):
                await pilot.press(key)
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, AttractScreen)
            assert not app.ENABLE_COMMAND_PALETTE
    asyncio.run(run())
