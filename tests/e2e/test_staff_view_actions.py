"""The staff view's other actions in a real headless Chromium at a phone's viewport, against the
real agent and the view's own process: a call nobody answers escalates on the phone (marked
"!", rung again, louder), "On my way" then "Done" close it, and "Handed over" takes a checked-in
pickup off the queue. What the phone did is what the agent recorded: the escalation, who
acknowledged and closed the call, and the handover, each once in the outbox."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.contracts.alerts import token_digest
from kiosk.app import KioskApp
from kiosk.settings import load_settings
from simulators.scenario.shopper import until
from tests.conftest import AgentProcess, need
from tests.e2e.test_staff_view import (
    BUS_TOKEN,
    CHROMIUM_FLAGS,
    PHONE,
    PIN,
    View,
    _sign_in,
    started_view,
)
from tests.integration.test_kiosk_flows import Store

ESCALATE_S = 10  # the shortest [staff] escalate_after_s allowed
STAFF_TABLE = (f'\n[staff]\nbus_tokens = ["{token_digest(BUS_TOKEN)}"]\n'
               f"escalate_after_s = {ESCALATE_S}\n")


@pytest.fixture
def view(tmp_path: Path, agent_factory: list[AgentProcess]) -> Iterator[View]:
    yield from started_view(tmp_path, agent_factory, STAFF_TABLE)


def test_an_escalation_done_and_handed_over_on_the_phone(view: View, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    chromium = need("chromium", "chromium")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots of the staff view: {shots}")
    store: Store = view.store  # type: ignore[attr-defined]

    async def run() -> None:
        kiosk = KioskApp(load_settings(str(store.cfg_path)))
        async with async_playwright() as p, kiosk.run_test(size=(100, 34)) as pilot:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                                bypass_csp=True)
            phone = await context.new_page()
            await phone.goto(f"http://127.0.0.1:{view.port}/")
            await phone.wait_for_selector("#pin-form", state="visible")
            await _sign_in(phone, "Anna", PIN)
            await phone.wait_for_selector("#work", state="visible")
            await phone.wait_for_function("window.staffView.streams >= 1")

            # a call nobody answers: after escalate_after_s it is marked and rung again
            await until(pilot, lambda: kiosk.agent_up, what="kiosk linked to the agent")
            await pilot.click("#call-staff")
            card = phone.locator("#alerts li[data-state=open]").first
            await card.wait_for(timeout=10_000)
            assert await card.locator(".level").count() == 0
            await phone.wait_for_function("window.staffView.rings >= 1")
            rings = await phone.evaluate("window.staffView.rings")
            await card.locator(".level").wait_for(timeout=(ESCALATE_S + 15) * 1000)
            assert (await card.locator(".level").inner_text()).startswith("!")
            await phone.wait_for_function(f"window.staffView.rings > {rings}")
            await phone.screenshot(path=shots / "escalated-390x844.png", full_page=True)

            # "On my way", then "Done": the card says who did each
            await card.locator("button.ack").click()
            done = phone.locator("#alerts li[data-state=acknowledged]").first
            await done.wait_for(timeout=10_000)
            assert "Anna is on the way" in await done.inner_text()
            await done.locator("button.close").click()
            closed = phone.locator("#alerts li[data-state=closed]").first
            await closed.wait_for(timeout=10_000)
            assert "done by Anna" in await closed.inner_text()
            assert await closed.locator("button").count() == 0  # nothing left to do on it

            # a pickup checked in at the kiosk, handed over from the phone: off the queue
            kiosk.check_in({"kind": "pickup", "code": "K7Q2M9"}, via="code")
            row = phone.locator("#queue li[data-order='A-1042']")
            await row.wait_for(timeout=10_000)
            await phone.screenshot(path=shots / "queue-390x844.png", full_page=True)
            await row.locator("button.done").click()
            await row.wait_for(state="detached", timeout=10_000)
            assert not await phone.locator("#no-queue").is_hidden()
            await phone.screenshot(path=shots / "handed-over-390x844.png", full_page=True)
            await browser.close()

    asyncio.run(run())
    assert store.agent.stop() == 0
    events = store.events()
    kinds = Counter(e["type"] for e in events)
    assert kinds["o2o.staff.alert.escalated"] >= 1
    acked = [e["data"] for e in events if e["type"] == "o2o.staff.alert.acknowledged"]
    closed = [e["data"] for e in events if e["type"] == "o2o.staff.alert.closed"]
    call = [e["data"]["alert"] for e in events if e["type"] == "o2o.staff.alert"
            and e["data"]["kind"] == "call-staff"]
    assert len(call) == 1
    assert [(a["alert"], a.get("by")) for a in acked if a["alert"] == call[0]] == \
        [(call[0], "Anna")], acked
    assert [(c["alert"], c["by"]) for c in closed if c["alert"] == call[0]] == \
        [(call[0], "Anna")], closed
    handovers = [e["data"] for e in events if e["type"] == "o2o.kiosk.handover"]
    assert [h["order"] for h in handovers] == ["A-1042"], handovers
