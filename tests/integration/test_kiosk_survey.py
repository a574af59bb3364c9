"""The one-tap survey offered beyond check-ins, on the real kiosk (Pilot) against the real
agent: after a staff call (once staff closed it, or on the way home from the card), after
browsing offers without a check-in, once a session; never at the idle reset, when the
shopper has gone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.contracts.alerts import token_digest
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.survey import SurveyScreen
from simulators.scenario.shopper import until
from tests.conftest import AgentProcess
from tests.integration.test_kiosk_flows import SIZE, Store

TOKEN = "the-staff-phone-token-of-this-test"


def surveys(store: Store) -> list[tuple[int, str]]:
    return [(e["data"]["score"], e["data"]["after"]) for e in store.events()
            if e["type"] == "o2o.kiosk.survey"]


def staff_close_the_call(store: Store) -> None:
    with BusClient(store.dir / "agent.sock") as staff:
        [alert] = [a for a in staff.request({"op": "alerts", "token": TOKEN})["alerts"]
                   if a["kind"] == "call-staff" and a["state"] != "closed"]
        for op in ("alert-ack", "alert-close"):
            staff.request({"op": op, "id": alert["id"], "by": "Anna", "token": TOKEN})


def test_after_a_staff_call_the_shopper_is_asked_once(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory,
                  kiosk=f'\n[staff]\nbus_tokens = ["{token_digest(TOKEN)}"]\n')
    store.agent.start()

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            # a shopper calls from the home screen and waits there: when staff close the
            # call, the kiosk asks how it went
            await pilot.click("#call-staff")
            await until(pilot, lambda: app.follow.waiting is not None
                        and app.follow.waiting.alert is not None, what="the call's alert")
            await asyncio.to_thread(staff_close_the_call, store)
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen), what="survey")
            await pilot.click("#score-5")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), 5)
            await app.reset_session("idle")

            # the next shopper calls from a card; the call's survey comes on the way home,
            # not the browsing one, and only once
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#call-staff")
            await until(pilot, lambda: bool(app.follow_text), what="the call taken")
            await pilot.click("#back")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            assert isinstance(app.screen, SurveyScreen) and app.screen.after == "staff-call"
            await pilot.click("#skip")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await asyncio.to_thread(staff_close_the_call, store)
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#back")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await asyncio.sleep(0.3)  # the last events leave the kiosk
    asyncio.run(run())
    assert surveys(store) == [(5, "staff-call")]


def test_browsing_is_asked_at_home_never_at_the_idle_reset(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory)
    store.agent.start()
    offered: list[Any] = []

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            app.on_shown = lambda _t, what: offered.append(what)
            # a shopper browses and walks away: the idle reset asks nobody
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await app.reset_session("idle")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            # the next one browses and goes home: asked, as a new session
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#back")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            await pilot.click("#score-2")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), 5)
            await asyncio.sleep(0.3)
    asyncio.run(run())
    assert offered.count("survey") == 1
    assert surveys(store) == [(2, "browse")]
