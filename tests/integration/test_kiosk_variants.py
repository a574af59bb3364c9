"""An A/B test end to end: the real kiosk (Pilot) shows a page with two variants to shopper
after shopper, each keeping theirs for the session; every view, hand-off, survey and
check-in names the bundle's version and the variant; and `o2o-edge report` on the agent's
roll-ups gives per variant the views, hand-offs and conversion the shoppers produced."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.kpi import wilson
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.result import ResultScreen
from kiosk.screens.survey import SurveyScreen
from kiosk.widgets.qr_view import QrView
from simulators.scenario.shopper import until
from tests.conftest import CLI, ROOT, AgentProcess, wait_for
from tests.integration.test_kiosk_flows import SIZE, Store

TITLES = {"Autumn coffee": "a", "Try our autumn blend": "b"}
BUNDLE: dict[str, Any] = {
    "version": 9,
    "attract": ["coffee", "jacket"],
    "pages": [
        {"id": "coffee", "title": {"en": "Autumn coffee"}, "offer": {"en": "2 for 1"},
         "link": "https://shop.example/p/coffee", "campaign": "autumn",
         "variants": [{"name": "a", "weight": 1},
                      {"name": "b", "weight": 1, "title": {"en": "Try our autumn blend"},
                       "offer": {"en": "3 for 2"}}]},
        {"id": "jacket", "title": {"en": "Rain jacket"}, "link": "https://shop.example/p/j"}],
    "survey": {"question": {"en": "How likely are you to recommend us?"}, "scale": 11},
}
SESSIONS = 8


def test_two_variants_from_kiosk_to_report(tmp_path: Path,
                                           agent_factory: list[AgentProcess]) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(BUNDLE))
    store = Store(tmp_path, agent_factory, kiosk=f'content_dir = "{folder}"\n')
    store.agent.start()
    views: Counter[str] = Counter()
    handoffs: Counter[str] = Counter()
    seen: list[str] = []

    async def run() -> None:
        app = KioskApp(store.config(), rng=random.Random(5))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            for n in range(SESSIONS):
                await pilot.click("#go-browse")
                await until(pilot, lambda: isinstance(app.screen, ContentScreen))
                variant = TITLES[str(app.screen.query_one("#title").render())]
                seen.append(variant)
                views[variant] += 1
                if n % 3 == 0:  # every third shopper takes the offer to their phone
                    await pilot.click("#handoff")
                    await until(pilot, lambda: bool(app.screen.query(QrView)))
                    handoffs[variant] += 1
                # on to the next offer and back: the same variant all session
                await pilot.click("#offer-next")
                await until(pilot, lambda: str(app.screen.query_one("#title").render())
                            == "Rain jacket")
                await pilot.click("#offer-prev")
                await until(pilot, lambda: str(app.screen.query_one("#title").render())
                            in TITLES)
                assert TITLES[str(app.screen.query_one("#title").render())] == variant
                views[variant] += 1
                if n == 1:  # this shopper answers the survey, checks in for a pickup
                    await pilot.click("#back")  # done browsing: the survey on the way home
                    await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
                    await pilot.click("#score-9")
                    await until(pilot, lambda: isinstance(app.screen, AttractScreen), 5)
                    await pilot.click("#go-pickup")
                    for key in "K7Q2M9":
                        await pilot.click(f"#key-{key}")
                    await pilot.click("#key-submit")
                    await until(pilot, lambda: isinstance(app.screen, ResultScreen))
                    await pilot.click("#done")
                    await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
                    await pilot.click("#score-7")
                    await until(pilot, lambda: bool(app.screen.query("#thanks")))
                await app.reset_session("idle")  # the shopper walked away
                await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            await asyncio.sleep(0.3)  # the last events' emits leave the kiosk
    asyncio.run(run())
    assert set(seen) == {"a", "b"}, seen  # the seed shows both to these shoppers

    events = store.events()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"])
    coffee = [v for v in by_type["o2o.kiosk.view"] if v["page"] == "coffee"]
    assert [v["variant"] for v in coffee] == [s for s in seen for _ in (1, 2)]
    assert [v.get("first", False) for v in coffee] == [True, False] * SESSIONS
    assert all(v["content_version"] == 9 for v in by_type["o2o.kiosk.view"])
    assert all("variant" not in v for v in by_type["o2o.kiosk.view"] if v["page"] == "jacket")
    assert [(h["variant"], h["content_version"]) for h in by_type["o2o.kiosk.handoff"]] == \
        [(seen[n], 9) for n in range(0, SESSIONS, 3)]
    [checkin] = by_type["o2o.kiosk.checkin"]
    assert (checkin["content_version"], checkin["variants"]) == (9, {"coffee": seen[1]})
    assert [(s["score"], s["scale"], s["after"], s["variants"], s["content_version"])
            for s in by_type["o2o.kiosk.survey"]] == [
        (9, 11, "browse", {"coffee": seen[1]}, 9), (7, 11, "pickup.ok", {"coffee": seen[1]}, 9)]

    with BusClient(tmp_path / "agent.sock") as bus:
        wait_for(lambda: bus.request({"op": "kpis"})["summary"].get("views")
                 == 3 * SESSIONS, 20)
    assert store.agent.stop() == 0
    res = subprocess.run([*CLI, "report", "--json", "--config", str(store.cfg_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["summary"]
    for variant in ("a", "b"):
        test = f"ab.coffee/{variant}"
        assert summary[f"{test}.views"] == views[variant]
        assert summary.get(f"{test}.handoffs", 0) == handoffs[variant]
        assert summary[f"{test}.conversion"] == round(handoffs[variant] / views[variant], 3)
        low, high = wilson(handoffs[variant], views[variant])
        assert summary[f"{test}.conversion_ci95"] == [round(low, 3), round(high, 3)]
        # per shopper: each session once, though it viewed the page twice
        shown_to = seen.count(variant)
        took = sum(1 for n in range(0, SESSIONS, 3) if seen[n] == variant)
        assert (summary[f"{test}.sessions"], summary.get(f"{test}.sessions_handed_off", 0)) \
            == (shown_to, took)
        assert summary[f"{test}.session_conversion"] == round(took / shown_to, 3)
    assert not any(k.startswith("ab.jacket") for k in summary)  # no test on that page
    assert summary["nps"] == 50  # the 0-10 answers: a 9 (a promoter) and a 7 (passive)
    text = subprocess.run([*CLI, "report", "--config", str(store.cfg_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("coffee")]
    # a row per variant in the per-view table and in the per-shopper one
    assert sorted(r[1] for r in rows) == ["a", "a", "b", "b"], text
    assert "A/B variants per shopper" in text
