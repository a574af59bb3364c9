"""Staff mode against the agent process: PIN with lock-out, the pickup queue and hand-over,
device health, today's numbers, reader test, content reload that keeps the last good
bundle and says why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from textual.widgets import DataTable

from agent.bus.client import BusClient
from kiosk.app import KioskApp
from kiosk.pin import hash_pin
from kiosk.screens.attract import AttractScreen
from kiosk.screens.staff import StaffScreen
from kiosk.screens.staff_pin import StaffPinScreen
from tests.conftest import AgentProcess
from tests.integration.test_kiosk_flows import SIZE, Store, until


def test_staff_pin_lockout_queue_handover_and_reader_test(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "manifest.json").write_text(json.dumps({"version": 3, "pages": [
        {"id": "only", "title": {"en": "The only page"}}]}))
    store = Store(tmp_path, agent_factory,
                  kiosk=f'staff_pin_hash = "{hash_pin("2468")}"\ncontent_dir = "{content}"\n')
    store.agent.start()
    with BusClient(tmp_path / "agent.sock") as bus:
        bus.request({"op": "checkin", "request": {"kind": "pickup", "code": "K7Q2M9"}})
    now = [1000.0]

    async def run() -> None:
        app = KioskApp(store.config(), clock=lambda: now[0])
        async with app.run_test(size=SIZE) as pilot:
            async def pin(digits: str) -> None:
                for d in digits:
                    await pilot.click(f"#key-{d}")
                await pilot.click("#key-submit")
                await pilot.pause()

            await until(pilot, lambda: app.agent_up)
            assert app.bundle.version == 3
            await pilot.click("#go-staff")
            await until(pilot, lambda: isinstance(app.screen, StaffPinScreen))
            for i in range(4):
                await pin("1111")
                assert f"{4 - i} tries left" in str(app.screen.query_one("#pin-message").render())
            await pin("1111")
            assert "Try again in 60 seconds" in str(app.screen.query_one("#pin-message").render())
            await pin("2468")  # the right PIN is refused while locked
            assert isinstance(app.screen, StaffPinScreen)
            now[0] += 61
            app.touch()  # the same instant, as the first key press would (else idle resets)
            await pin("2468")
            await until(pilot, lambda: isinstance(app.screen, StaffScreen))
            table = app.screen.query_one("#queue")
            await until(pilot, lambda: table.row_count == 1, what="queue row")  # type: ignore[attr-defined]
            health = str(app.screen.query_one("#health").render())
            assert "uplink: disabled" in health and "events waiting" in health
            # a tap while staff mode is open does not start a shopper flow: it tests the reader
            await pilot.click("#test-reader")
            store.emit("o2o.nfc.tap", {"tag": {"id": "anon:1", "kind": "unregistered"},
                                       "product": "NXP NTAG213", "ndef": "ok", "read_ms": 12})
            message = app.screen.query_one("#staff-message")
            await until(pilot, lambda: "NFC OK" in str(message.render()), what="reader test")
            assert isinstance(app.screen, StaffScreen)
            await pilot.click("#handover")
            await until(pilot, lambda: table.row_count == 0, what="handed over")  # type: ignore[attr-defined]
            # a broken bundle is refused on reload; the last good one stays, and staff see why
            (content / "manifest.json").write_text('{"version": 4, "pages": [{"id": "x"}]}')
            await pilot.click("#reload")
            await pilot.pause()
            problem = str(app.screen.query_one("#content-problem").render())
            assert "pages[0].title" in problem and app.bundle.version == 3
            # the kiosk itself only saw what came after it started; today's numbers come
            # from the agent's roll-ups, which include the check-in from before
            assert app.stats.total("taps") == 1 and app.stats.total("checkins") == 0
            today = app.screen.query_one("#today", DataTable)
            await until(pilot, lambda: str(today.get_row("checkins")[1]) == "1",
                        what="agent KPIs")
            # the tap was staff mode's reader test: no shopper tapped (counted as taps.staff_test)
            assert [str(c) for c in today.get_row("taps")[:2]] == ["taps", "0"]
            await pilot.click("#exit")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await asyncio.sleep(0.3)
    asyncio.run(run())
    staff = [e["data"] for e in store.events() if e["type"] == "o2o.kiosk.staff"]
    assert [s["action"] for s in staff].count("pin-refused") == 6
    assert {"action": "enter"} in [{k: v for k, v in s.items() if k == "action"} for s in staff]
    handed = [e for e in store.events() if e["type"] == "o2o.kiosk.handover"]
    assert handed and handed[0]["data"]["order"] == "A-1042"
