"""Staff mode speaks the kiosk's language: every word the staff screens show (the queue and
its columns, today's table, device health, the reader test, the hand-over, reloading the
content, the PIN pad) is from the catalogue of the language chosen, none left in English in
German or Spanish."""

from __future__ import annotations

import asyncio
import re
import string
import time
from typing import Any

import pytest

from agent.contracts import events as ev
from agent.contracts.bus import Op
from kiosk.app import KioskApp
from kiosk.i18n import load_catalogues
from kiosk.screens.staff import StaffScreen
from tests.snapshots.kiosk_screens import kiosk

STATUS = {"uplink": {"state": "connected", "url": "mqtts://broker.example"},
          "outbox": {"depth": 3, "oldest_age_s": 12.0},
          "ble": {"scanner": {"state": "scanning"}}, "nfc": {"reader": {"state": "ready"}},
          "qr": {"camera": {"state": "capturing"}}}
KPIS = {"summary": {"taps": 4, "scans": 2, "checkins": 1, "views": 5,
                    "conversion.view_to_handoff": 0.4, "survey.average": 4.5,
                    "survey.answers": 2},
        "hourly": {"taps": [0, 1, 3] + [0] * 21}}
QUEUE = [{"order_id": f"A-{i}", "first_name": "Ann", "checked_in_at": time.time() - 90}
         for i in range(40)]


def _english_only(language: str) -> list[str]:
    """The fixed words of every English staff text that the language says otherwise (a
    placeholder's value is data: only the words around it)."""
    cats = load_catalogues()

    def words(lang: str, key: str) -> set[str]:
        return {w for literal, *_ in string.Formatter().parse(cats[lang][key])
                for w in re.split(r"[ ,:()·.]+", literal) if len(w) > 2}
    staff = [k for k in cats["en"] if k.startswith("staff.")]
    theirs = set().union(*(words(language, k) for k in staff))  # NFC, BLE: theirs too
    return sorted(set().union(*(words("en", k) for k in staff)) - theirs)


def _shown(app: KioskApp) -> str:
    return "\n".join(str(s.text) for s in app.screen._compositor.render_strips())


def _fake_agent(app: KioskApp) -> None:
    async def request(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["op"] == Op.QUEUE:
            return {"queue": QUEUE, "total": 55}
        if obj["op"] == Op.KPIS:
            return KPIS
        return {}

    async def status() -> Any:
        return STATUS
    app.link.request = request  # type: ignore[method-assign]
    app.link.status = status  # type: ignore[method-assign]


@pytest.mark.parametrize("language", ["de", "es"])
def test_staff_mode_shows_no_english(language: str) -> None:
    english = _english_only(language)
    assert "waiting" in english and "oldest" in english and "answers" in english

    async def run() -> None:
        app = kiosk(language)
        _fake_agent(app)
        async with app.run_test(size=(120, 40)) as pilot:
            app.go("staff")  # the PIN pad first (no PIN set: it says so, in the language)
            await pilot.pause()
            shown = _shown(app)
            app.enter_staff_mode()
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, StaffScreen)
            screen.refresh_data()
            await pilot.pause(0.3)
            shown += _shown(app)
            assert "A-0" in shown and "Ann" in shown  # the agent's answers are on screen
            await pilot.click("#test-reader")
            await pilot.pause()
            shown += _shown(app)
            screen.hardware_event({"type": ev.NFC_TAP, "data": {
                "product": "NTAG215", "tag": {"kind": "shelf"}, "ndef": "ok", "read_ms": 14}})
            await pilot.pause()
            shown += _shown(app)
            screen.hardware_event({"type": ev.QR_SCAN, "data": {"class": "product"}})
            screen.waiting_for_test = True
            screen.hardware_event({"type": ev.QR_SCAN, "data": {"class": "product"}})
            await pilot.pause()
            shown += _shown(app)
            await pilot.click("#handover")
            await pilot.pause(0.3)
            shown += _shown(app)
            await pilot.click("#reload")
            await pilot.pause()
            shown += _shown(app)
            reloaded = str(screen.query_one("#staff-message").render())
            assert reloaded in (app.translator("staff.reload.sample"), app.translator(
                "staff.reload.loaded", version=app.bundle.version))
            words = set(re.split(r"[^\w-]+", shown))
            left = [w for w in english if w in words]
            assert left == [], f"English on the {language} staff screens: {left}"
            t = app.translator  # and the words in the language are there
            for said in (t("staff.col.waiting"), t("staff.kpi.views"),
                         t("staff.health.ble", state="scanning"),
                         t("staff.test.nfc", product="NTAG215", kind="shelf", ndef="ok",
                           ms="14"),
                         t("staff.test.camera", kind="product"),
                         t("staff.handed-over", order="A-0")):
                assert said in shown, said
    asyncio.run(run())
