"""The kiosk shows what the agent made of an offer code at the camera: its words in the
shopper's language and "show this at the till", or why not; Done goes home (no survey)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.offer import OfferScreen
from simulators.scenario.shopper import until
from tests.conftest import AgentProcess
from tests.integration.test_kiosk_flows import SIZE, Store, message_text


def test_offer_codes_at_the_kiosk(tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory)
    store.agent.start()

    async def shown_after(pilot: Any, app: KioskApp, data: dict[str, Any]) -> str:
        before = len(app.shown)
        store.emit("o2o.qr.scan", data)
        await until(pilot, lambda: len(app.shown) > before
                    and isinstance(app.screen, OfferScreen), what=str(data))
        return message_text(app)

    async def run() -> list[str]:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="the agent")
            said = [await shown_after(pilot, app, d) for d in [
                {"class": "offer", "offer": "coffee-20", "campaign": "spring"},
                {"class": "rejected", "reason": "offer-used", "offer": "coffee-20"},
                {"class": "rejected", "reason": "offer-expired"},
                {"class": "rejected", "reason": "offer-other-store"},
                {"class": "rejected", "reason": "offer-bad-signature"},
                {"class": "offer", "offer": "[b]not-ours[/b]"},  # no words for it, no markup
            ]]
            app.translator.language = "de"
            said.append(await shown_after(pilot, app, {"class": "offer", "offer": "coffee-20"}))
            await pilot.click("#done")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen),
                        what=f"home after Done ({app.screen})")
        return said

    said = asyncio.run(run())
    assert said == [
        "Valid: 20 % off coffee — show this at the till.",
        "This offer was already used.",
        "This offer has expired.",
        "This offer is not valid in this store.",
        "This is not a valid offer code. Our staff can help.",
        "Valid: your offer — show this at the till.",
        "Gültig: 20 % Rabatt auf Kaffee — zeigen Sie dies an der Kasse.",
    ]
