"""Product barcodes at the kiosk, against the agent process and its camera: an EAN-13 and a
GS1 Digital Link shown to the camera (frames from the camera simulator) open their products'
cards with price and stock; a GTIN the catalog lacks is said kindly; offline the card says
how old the prices are; "Reserve for pickup" sends o2o.kiosk.reserve; the card speaks the
shopper's language; a catalog increment changes a price the next scan shows."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.catalog import CatalogStore
from agent.config import load_config
from agent.storelink.docs import Doc
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.product import ProductScreen
from simulators.camera_files import blank, write_video
from simulators.qr_frames import Variant, make_variant
from simulators.scenario.shopper import until
from tests.conftest import CLI, ROOT, AgentProcess, write_config
from tests.integration.test_kiosk_flows import SIZE

MUG = {
    "sku": "MUG-1",
    "gtin": "4006381333931",
    "name": {"en": "Blue mug", "de": "Blaue Tasse"},
    "price": 1299,
    "currency": "EUR",
    "stock": 3,
}
LAMP = {
    "sku": "LAMP-7",
    "gtin": "09506000134352",
    "name": {"en": "Desk lamp"},
    "price": 4500,
    "currency": "EUR",
    "stock": 0,
    "nearby": [{"store": "berlin-02", "name": "Berlin Mitte", "stock": 5}],
}
UNKNOWN = "5901234123457"  # a valid EAN-13 the catalog does not have
THREE_HOURS = 3 * 3600


def catalog_doc(version: int, body: dict[str, Any], issued: float) -> Doc:
    return Doc("catalog", "store-1", "all", version, issued, issued + 86400, body, "k")


def card(app: KioskApp) -> list[str]:
    screen = app.screen
    return [
        str(w.render()) for w in screen.query("#message, #price, #stock, #prices-age") if w.display
    ]


def test_product_barcodes_at_the_camera_open_their_cards(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    db = tmp_path / "store.db"
    catalog = CatalogStore(db)
    catalog.apply(
        catalog_doc(1, {"mode": "snapshot", "products": [MUG, LAMP]}, time.time() - THREE_HOURS)
    )
    ean = Variant(kind="EAN13", writer="zxing", module_px=(3.0, 3.0))
    link = Variant(module_px=(5.0, 5.0))
    shown = [
        ("4006381333931", ean),
        ("https://id.gs1.org/01/09506000134352/10/L1", link),
        (UNKNOWN, ean),
    ]
    frames = [blank((640, 480))] * 50  # 5 s: the kiosk is up before the first code
    for i, (text, how) in enumerate(shown):
        frames += [make_variant(text, (640, 480), how, seed=i).image] * 20
        frames += [blank((640, 480))] * 30
    video = tmp_path / "shelf.avi"
    write_video(video, frames, fps=10)
    cfg = write_config(
        tmp_path / "config.toml",
        url="",
        device="kiosk-2",
        extra=f"""
[kiosk]
store_db = "{db}"

[qr]
enabled = true
camera = "{video}"
fps_limit = 10
""",
    )
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()

    async def run() -> dict[str, list[str]]:
        app = KioskApp(load_config(str(cfg)))
        seen: dict[str, list[str]] = {}
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="the agent")
            for gtin in ("04006381333931", "09506000134352", "0" + UNKNOWN):
                await until(
                    pilot,
                    lambda g=gtin: isinstance(app.screen, ProductScreen) and app.screen.gtin == g,
                    timeout=40,
                    what=f"the card of {gtin}",
                )
                await pilot.pause()
                seen[gtin] = card(app)
            # the same mug again, by its scan: reserve it, in German
            catalog.apply(
                catalog_doc(
                    2, {"mode": "increment", "products": [{**MUG, "price": 999}]}, time.time() - 120
                )
            )
            app.translator.language = "de"
            agent_emit(tmp_path, {"class": "gtin", "gtin": "04006381333931", "symbology": "EAN13"})
            await until(
                pilot,
                lambda: (
                    isinstance(app.screen, ProductScreen) and app.screen.gtin == "04006381333931"
                ),
                what="the mug again",
            )
            await pilot.pause()
            seen["de"] = card(app)
            await pilot.click("#reserve")
            await pilot.pause()
            seen["reserved"] = card(app)
            await pilot.click("#done")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), what="home")
        return seen

    seen = asyncio.run(run())
    catalog.close()
    assert seen["04006381333931"] == [
        "Blue mug",
        "€ 12.99",
        "3 in stock here",
        "Offline: prices as of 3 h ago.",
    ]
    assert seen["09506000134352"] == [
        "Desk lamp",
        "€ 45.00",
        "Available at Berlin Mitte",
        "Offline: prices as of 3 h ago.",
    ]
    assert seen["0" + UNKNOWN] == [
        "Sorry, we don't know this product yet. Our staff are happy to help."
    ]
    assert seen["de"] == [
        "Blaue Tasse",
        "9,99 €",
        "3 hier auf Lager",
        "Offline: Preise von vor 2 Minuten.",
    ]
    assert seen["reserved"][2].startswith("Reservierung angefragt")
    res = subprocess.run(
        [*CLI, "outbox", "export", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    events = [json.loads(line) for line in res.stdout.splitlines()]
    reserves = [
        {k: v for k, v in e["data"].items() if k != "kiosk_time"}
        for e in events
        if e["type"] == "o2o.kiosk.reserve"
    ]
    assert reserves == [
        {
            "sku": "MUG-1",
            "gtin": "04006381333931",
            "price": 999,
            "currency": "EUR",
            "stock_here": 3,
            "language": "de",
        }
    ]
    scans = [e["data"] for e in events if e["type"] == "o2o.qr.scan"]
    assert [s.get("gtin") for s in scans if s["class"] == "gtin"][:3] == [
        "04006381333931",
        "09506000134352",
        "0" + UNKNOWN,
    ]


def agent_emit(tmp_path: Path, data: dict[str, Any]) -> None:
    with BusClient(tmp_path / "agent.sock") as bus:
        bus.emit([{"type": "o2o.qr.scan", "data": data}])
