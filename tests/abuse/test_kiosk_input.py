"""Hostile text in the kiosk's data: first names and order ids from orders imports and
documents, content bundle texts, tap and scan payloads, status texts, answers to check-ins.

Nothing from outside may be read as Textual markup (`[/]` crashed staff mode's queue,
`[@click=app.quit]` was live there), reach the screen with control characters, or wreck a
layout by its length. Each case checks what staff or a shopper would see: the text as it
was sent (controls taken out, long text cut with an ellipsis), and the kiosk still running.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from textual.content import Content
from textual.widgets import DataTable, Static
from textual.widgets._data_table import default_cell_formatter

from agent.bus.client import BusClient
from agent.checkin import StoreDb
from agent.config import Config
from kiosk.app import KioskApp
from kiosk.i18n import Translator, load_catalogues
from kiosk.pin import hash_pin
from kiosk.safe_text import ELLIPSIS, LINE_MAX, NAME_MAX, TEXT_MAX, cell, para, plain
from kiosk.screens.attract import AttractScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.result import ResultScreen
from kiosk.screens.staff import StaffScreen
from kiosk.screens.staff_pin import StaffPinScreen
from kiosk.screens.survey import SurveyScreen
from kiosk.widgets.qr_view import TOO_LONG, QrView
from tests.abuse.conftest import ABUSE
from tests.conftest import AgentProcess
from tests.integration.test_kiosk_flows import SIZE, Store, until

# what a careless import or a hostile document puts in a name
HOSTILE = [
    "[/]",
    "[@click=app.quit]quit[/]",
    "[b]bold[/b] [link=https://evil.example]x[/link]",
    "[red",
    "\x1b[2J\x1b]0;owned\x07Eve\x9b31m",
    "Ann\u202eanna\u2066",
    "שלום עליכם",
    "Zoë 🧑‍🍳👩🏽‍🦱",
    "Bo\tb\r\nby",
    "x" * 10_000,
]


def _literal(value: str, limit: int = NAME_MAX) -> str:
    """What the screen must show for `value`: the same text, controls out, cut at `limit`."""
    return plain(value, limit)


def _table_text(table: DataTable[Any]) -> str:
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


def _shown(app: KioskApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def _no_controls(text: str) -> bool:
    return not any((ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f for c in text)


def test_hostile_names_in_the_staff_queue_are_shown_as_they_are(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory, kiosk=f'staff_pin_hash = "{hash_pin("2468")}"\n')
    db = StoreDb(tmp_path / "store.db")
    db.replace("orders", [{"order_id": f"H-{i}" if i else "[@click=app.quit]",
                           "code": f"HOST{i:02d}", "first_name": name, "status": "ready",
                           "eta_min": 0, "store": "store-1"} for i, name in enumerate(HOSTILE)])
    db.close()
    store.agent.start()
    with BusClient(tmp_path / "agent.sock") as bus:
        for i in range(len(HOSTILE)):
            reply = bus.request({"op": "checkin", "request": {"kind": "pickup",
                                                              "code": f"HOST{i:02d}"}})
            assert reply["ok"], reply

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up)
            await pilot.click("#go-staff")
            await until(pilot, lambda: isinstance(app.screen, StaffPinScreen))
            for d in "2468":
                await pilot.click(f"#key-{d}")
            await pilot.click("#key-submit")
            await until(pilot, lambda: isinstance(app.screen, StaffScreen))
            table = app.screen.query_one("#queue", DataTable)
            await until(pilot, lambda: table.row_count == len(HOSTILE), what="the queue")
            rows = [[str(c) for c in table.get_row_at(i)[:2]] for i in range(table.row_count)]
            want = [[_literal(f"H-{i}" if i else "[@click=app.quit]"), _literal(name)]
                    for i, name in enumerate(HOSTILE)]
            assert sorted(rows) == sorted(want)
            shown = _table_text(table)
            assert "[@click=app.quit]" in shown and "[/]" in shown and "[b]bold[/b]" in shown
            assert "שלום עליכם" in shown and "Zoë" in shown
            assert _no_controls(shown) and "owned" in shown
            assert len(max(shown.splitlines(), key=len)) < 200  # 10k characters cost a column
            # the cells that held live markup are clicked: nothing acts, the kiosk stays
            await pilot.click("#queue", offset=(3, 1))
            await pilot.click("#queue", offset=(12, 2))
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, StaffScreen)
            # the reader test shows what the tag said, literally
            await pilot.click("#test-reader")
            store.emit("o2o.nfc.tap", {"tag": {"id": "anon:1", "kind": "[/]"},
                                       "product": "[@click=app.quit]NTAG\x1b[5m", "ndef": "ok",
                                       "read_ms": 3})
            message = app.screen.query_one("#staff-message", Static)
            await until(pilot, lambda: "NFC OK" in str(message.render()), what="reader test")
            said = str(message.render())
            assert "[@click=app.quit]NTAG[5m ([/])" in said and _no_controls(said)
            assert app.is_running
    asyncio.run(run())


def test_hostile_names_in_check_in_answers(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = Store(tmp_path, agent_factory)
    db = StoreDb(tmp_path / "store.db")
    db.replace("loyalty", [{"card": f"{i:016x}", "first_name": name, "points": 1}
                           for i, name in enumerate(HOSTILE, start=1)])
    db.close()
    store.agent.start()

    async def run() -> None:
        app = KioskApp(store.config())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.agent_up)
            for i, name in enumerate(HOSTILE, start=1):
                before = len(app.shown)
                store.emit("o2o.nfc.tap", {"tag": {"id": f"{i:016x}", "kind": "loyalty"}})
                await until(pilot, lambda b=before: len(app.shown) > b  # type: ignore[misc]
                            and isinstance(app.screen, ResultScreen), what=repr(name[:20]))
                said = _shown(app, "#message")
                assert said == f"Welcome back, {_literal(name)}! You have 1 points.", said
            assert app.is_running
    asyncio.run(run())


def _bundle(folder: Path) -> Path:
    folder.mkdir()
    texts = {"en": "[@click=app.quit]Offer[/] \u202e\x85\x9b2J", "de": "[/]"}
    manifest = {"version": 1, "privacy_url": "https://shop.example/privacy", "pages": [
        {"id": "p1", "title": texts, "text": {"en": "line one\n[b]two[/b]\n" + "y" * 1900},
         "offer": {"en": "\ud800 half [/]"}, "price": "[red]4.90[/red]",
         "link": "https://shop.example/p/" + "a" * 3000}],
        "survey": {"question": {"en": "[@click=app.quit]How?[/] 🧑‍🍳"}, "scale": 5}}
    # json.dumps writes the lone surrogate as an escape: a valid file, a surrogate once read
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_hostile_content_bundle_texts_are_shown_as_they_are(tmp_path: Path) -> None:
    folder = _bundle(tmp_path / "content")
    cfg = Config(kiosk=dataclass_replace(Config().kiosk, content_dir=str(folder),
                                         store_db=tmp_path / "store.db"))

    async def run() -> None:
        app = KioskApp(cfg, connect=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.bundle.version == 1, app.content_problem
            assert _shown(app, "#slide-title") == "[@click=app.quit]Offer[/]  2J"
            assert _shown(app, "#slide-text") == "\ufffd half [/]"
            await pilot.click("#slide-title")  # the title's "link" is no link
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            assert _shown(app, "#offer") == "\ufffd half [/]"
            text = _shown(app, "#text")
            assert text.startswith("line one\n[b]two[/b]\n") and len(text) <= TEXT_MAX
            assert _shown(app, "#price") == "Price: [red]4.90[/red]"
            # a link longer than a QR code holds: said so, instead of failing on the button
            await pilot.click("#handoff")
            await until(pilot, lambda: bool(app.screen.query(QrView)), what="hand-off box")
            assert app.screen.query_one(QrView).lines == [TOO_LONG]
            await pilot.click("#lang-de")
            await pilot.pause()
            assert _shown(app, "#title") == "[/]"
            app.go("survey")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            assert _shown(app, "#question") == "[@click=app.quit]How?[/] 🧑‍🍳"
            await pilot.click("#question")
            # a content problem with markup in it reaches staff as a notification, literally
            (folder / "manifest.json").write_text(json.dumps(
                {"version": 2, "pages": [{"id": "p", "title": {"[/]": "x"}}]}))
            app.post_message(KioskApp.AgentEvent(
                {"type": "o2o.link.command", "data": {"name": "reload-content"}}))
            await until(pilot, lambda: bool(app._notifications), what="notification")
            await pilot.pause()
            note = next(iter(app._notifications))
            assert "'[/]' is not a language code" in note.message
            assert app.is_running and app.bundle.version == 1
            app.home()
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
    asyncio.run(run())


def test_hardware_events_of_any_shape_start_nothing_and_break_nothing() -> None:
    """Taps and scans reach every kiosk from the bus; one with fields of the wrong shape (a
    bus client may send it) starts no flow and the kiosk goes on."""
    shapes: list[Any] = [None, "x", 7, [], ["[/]"], {"[/]": 1}, True, 1e308]
    events = [{"type": "o2o.nfc.tap", "data": {"tag": s, "records": s}} for s in shapes]
    events += [{"type": "o2o.nfc.tap", "data": {"tag": {"id": s, "kind": s},
                                                "records": [s, {"class": "product", "host": s,
                                                                "path": s}]}} for s in shapes]
    events += [{"type": "o2o.qr.scan", "data": {"class": c, "host": s, "path": s, "reason": s}}
               for s in shapes for c in ("product", "rejected", s)]
    events += [{"type": "o2o.link.command", "data": s} for s in shapes]
    events += [{"type": "o2o.ble.presence", "data": {"action": "enter", "id": s, "zone": s}}
               for s in shapes]
    events += [{"type": "o2o.kiosk.survey", "data": {"score": s}} for s in shapes]
    events += [{"type": "o2o.kiosk.checkin", "data": {"outcome": s}} for s in shapes]

    async def run() -> None:
        app = KioskApp(Config(), connect=False)
        async with app.run_test(size=SIZE) as pilot:
            for event in events:
                app.post_message(KioskApp.AgentEvent(event))
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, AttractScreen)
            assert app.stats.answers == 1  # the 7; nothing that is no score was counted
    asyncio.run(run())


def dataclass_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


# --- the helpers, property-based ------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=400) | \
    st.sampled_from(HOSTILE) | st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE),
                                         st.text(max_size=50))


def _render(renderable: Any) -> str:
    console = Console(width=60, file=None, record=True, legacy_windows=False,
                      color_system=None, force_terminal=False)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


@ABUSE
@given(text=ANY_TEXT, limit=st.integers(min_value=2, max_value=500))
def test_any_outside_text_is_bounded_literal_and_printable(text: str, limit: int) -> None:
    one = plain(text, limit)
    many = para(text, limit)
    for out in (one, many):
        assert len(out) <= limit
        assert _no_controls(out)
        assert not any(0xd800 <= ord(c) <= 0xdfff for c in out)
        assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
        out.encode("utf-8")  # writable to the screen
    assert "\n" not in one
    if len(text) <= limit and text.isprintable():
        assert one == text  # clean text is left as it is
    if len(text) > limit:
        assert one.endswith(ELLIPSIS)
    # shown without markup parsing it is the same text: what a Static(markup=False) and a
    # DataTable cell draw
    assert Content(one).plain == one
    assert cell(text, limit).plain == one
    rendered = _render(default_cell_formatter(cell(text, limit)))
    assert _no_controls(rendered)


def test_a_soft_hyphen_a_catalog_may_hold_takes_no_cell() -> None:
    """A catalog's names may hold soft hyphens (where a long word may break): a terminal
    grid breaks no word there, so the kiosk shows the word whole, without it."""
    assert plain("Kaffee\u00adbohnen 500\u00a0g") == "Kaffeebohnen 500\u00a0g"
    assert para("Kaffee\u00adbohnen\naus\u00adBrasilien") == "Kaffeebohnen\nausBrasilien"


@ABUSE
@given(name=ANY_TEXT, minutes=st.integers() | ANY_TEXT)
def test_names_put_into_sentences_stay_data(name: str, minutes: Any) -> None:
    t = Translator(load_catalogues(), "en")
    said = t("result.pickup.ok", name=name, minutes=minutes)
    assert said.startswith("Thanks, ") and said.endswith(" min.")
    assert _no_controls(said) and len(said) < 2 * LINE_MAX + 100
    assert plain(name, LINE_MAX) in said


@settings(parent=ABUSE, max_examples=min(ABUSE.max_examples, 8))
@given(names=st.lists(ANY_TEXT, min_size=1, max_size=12))
def test_any_names_in_the_queue_render_literally(names: list[str]) -> None:
    """The queue as staff mode fills it, with random names, in a running kiosk."""
    from kiosk.screens.staff import fill_queue

    rows = [{"order_id": f"O-{i}", "first_name": n, "checked_in_at": 0.0}
            for i, n in enumerate(names)]

    async def run() -> None:
        app = KioskApp(Config(), connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(StaffScreen())
            await until(pilot, lambda: isinstance(app.screen, StaffScreen))
            table = app.screen.query_one("#queue", DataTable)
            fill_queue(table, rows, now=60.0)
            await pilot.pause()
            shown = _table_text(table)
            assert _no_controls(shown)
            got = sorted(str(table.get_row_at(i)[1]) for i in range(table.row_count))
            assert got == sorted(plain(n, NAME_MAX) for n in names)
            assert app.is_running
    asyncio.run(run())
