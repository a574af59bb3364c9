"""The kiosk follows the alert its shopper raised (Pilot, against a stand-in agent): "we have
let the team know" when the agent has the call, "<name> from our team is coming" only after
that very alert is acknowledged, "please ask at the counter" with the agent away; a pickup
check-in's result screen says the same on its follow-up line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Static

from kiosk.app import KioskApp
from kiosk.screens.result import ResultScreen
from kiosk.settings import BusSection, KioskSettings
from simulators.scenario.shopper import until
from tests.unit.staffview.fakebus import FakeAgent

SIZE = (100, 34)


def _app(sock: Path) -> KioskApp:
    return KioskApp(KioskSettings(bus=BusSection(socket=sock)))


def test_a_call_says_the_team_knows_then_who_is_coming_after_the_ack(tmp_path: Path) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        app = _app(agent.path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            await pilot.click("#call-staff")
            await until(pilot, lambda: bool(app.follow_text), what="a word on the call")
            assert app.follow_text == "We have let the team know."
            [cause] = [i for i, e in agent.emitted if e["type"] == "o2o.kiosk.assist"]
            # another kiosk's call answered first: not ours, nothing changes
            agent.raise_alert("AL-OTHER", cause="EVT-elsewhere")
            agent.push("o2o.staff.alert.acknowledged", {"alert": "AL-OTHER", "kind": "call-staff",
                                                        "by": "Carl", "response_s": 2.0})
            agent.raise_alert("AL-1", cause=cause)
            await pilot.pause(0.2)
            assert app.follow_text == "We have let the team know."
            agent.push("o2o.staff.alert.acknowledged", {"alert": "AL-1", "kind": "call-staff",
                                                        "by": "Anna", "response_s": 9.0})
            await until(pilot, lambda: "Anna" in app.follow_text, what="who is coming")
            assert app.follow_text == "Anna from our team is coming."
        await agent.stop()

    asyncio.run(main())


def test_with_the_agent_away_the_shopper_is_sent_to_the_counter(tmp_path: Path) -> None:
    async def main() -> None:
        app = _app(tmp_path / "nobody.sock")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.click("#call-staff")
            await until(pilot, lambda: bool(app.follow_text), what="a word on the call")
            assert "Please ask at the counter" in app.follow_text
            # the call still goes upstream once the agent is back, marked as sent to the
            # counter: the agent records it and raises no alert for it
            [call] = [e for e in app.link._pending if e["type"] == "o2o.kiosk.assist"]
            assert call["data"]["counter"] is True and call["data"]["kiosk_time"] > 0

    asyncio.run(main())


def test_a_pickup_check_in_says_the_team_knows_then_who_is_coming(tmp_path: Path) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        app = _app(agent.path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            app.check_in({"kind": "pickup", "code": "K7Q2M9"}, via="code")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen), what="result")
            line = app.screen.query_one("#follow-up", Static)
            assert str(line.render()) == "We have let the team know." and line.display
            # another pickup's alert, raised and acknowledged just now: not this shopper's
            agent.raise_alert("AL-Q", kind="pickup", subject="Carla, A-1043")
            agent.push("o2o.staff.alert.acknowledged", {"alert": "AL-Q", "kind": "pickup",
                                                        "by": "Carl", "response_s": 1.0})
            agent.raise_alert("AL-P", kind="pickup", subject="Ben, A-1042")
            await pilot.pause(0.2)
            assert str(line.render()) == "We have let the team know."
            agent.push("o2o.staff.alert.acknowledged", {"alert": "AL-P", "kind": "pickup",
                                                        "by": "Anna", "response_s": 3.0})
            await until(pilot, lambda: "Anna" in str(line.render()), what="who is coming")
            assert str(line.render()) == "Anna from our team is coming."
        await agent.stop()

    asyncio.run(main())


def test_a_check_in_without_an_alert_promises_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        agent.checkin_alert = None  # type: ignore[assignment]  # the agent raised none
        await agent.start()
        app = _app(agent.path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            app.check_in({"kind": "pickup", "code": "K7Q2M9"}, via="code")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen), what="result")
            line = app.screen.query_one("#follow-up", Static)
            assert not line.display and app.follow_text == ""
        await agent.stop()

    asyncio.run(main())


def test_the_follow_up_line_follows_a_language_switch(tmp_path: Path) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        app = _app(agent.path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            app.check_in({"kind": "pickup", "code": "K7Q2M9"}, via="code")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen), what="result")

            def line() -> str:
                return str(app.screen.query_one("#follow-up", Static).render())

            assert line() == "We have let the team know."
            await pilot.click("#lang-de")
            await until(pilot, lambda: line() == "Wir haben dem Team Bescheid gegeben.",
                        what="the line in German")
            agent.raise_alert("AL-P", kind="pickup")
            agent.push("o2o.staff.alert.acknowledged", {"alert": "AL-P", "kind": "pickup",
                                                        "by": "Anna", "response_s": 3.0})
            await until(pilot, lambda: line() == "Anna aus unserem Team kommt zu Ihnen.",
                        what="who is coming, in German")
            await pilot.click("#lang-es")
            await until(pilot, lambda: line() == "Anna, de nuestro equipo, viene hacia aquí.",
                        what="who is coming, in Spanish")
            assert app.follow_text == line()
        await agent.stop()

    asyncio.run(main())
