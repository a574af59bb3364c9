"""Staff mode: the pickup queue with waiting times in colour and a "handed over" action,
device health (uplink, outbox depth and age, each driver's state), today's numbers with
sparklines, and manual controls: reload content, test a reader, leave."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Sparkline, Static

from kiosk.errors import KioskError

if TYPE_CHECKING:
    from kiosk.app import KioskApp

REFRESH_S = 2.0
WAIT_COLOURS = ((180, "green"), (480, "yellow"))  # seconds waited -> colour; beyond: red


def waiting(seconds: float) -> Text:
    colour = next((c for limit, c in WAIT_COLOURS if seconds < limit), "red")
    return Text(f"{int(seconds // 60)}:{int(seconds % 60):02d}", style=f"bold {colour}")


def health_lines(st: dict[str, Any]) -> list[str]:
    u, o = st.get("uplink", {}), st.get("outbox", {})
    lines = [f"uplink: {u.get('state')}  {u.get('url', '')}",
             f"outbox: {o.get('depth', '?')} events waiting, oldest "
             f"{round(o.get('oldest_age_s') or 0)} s"]
    if "ble" in st:
        lines.append(f"BLE scanner: {st['ble']['scanner'].get('state')}")
    if "nfc" in st:
        r = st["nfc"]["reader"]
        lines.append(f"NFC reader: {r.get('state')}" + (
            f" - {r['recent_errors'][-1]}" if r.get("recent_errors") else ""))
    if "qr" in st:
        cam = st["qr"]["camera"]
        lines.append(f"camera: {cam.get('state')}" + (
            f" - {cam['last_error']}" if cam.get("state") != "capturing" and
            cam.get("last_error") else ""))
    return lines


class StaffScreen(Screen[None]):
    staff = True  # hardware events do not start shopper flows while staff mode is open

    def __init__(self) -> None:
        super().__init__(id="staff")
        self.waiting_for_test = False

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def compose(self) -> ComposeResult:
        t = self.kiosk.translator
        with Horizontal(id="staff-top"):
            with Vertical(id="queue-box"):
                yield Static(t("staff.queue"), classes="heading", markup=False)
                yield DataTable(id="queue", cursor_type="row")
                yield Button(t("staff.handed"), id="handover", variant="success")
            with Vertical(id="health-box"):
                yield Static(t("staff.health"), classes="heading", markup=False)
                yield Static("", id="health", markup=False)
                yield Static(self.kiosk.content_problem, id="content-problem", markup=False)
        yield Static(t("staff.today"), classes="heading", markup=False)
        with Horizontal(id="today"):
            for kind in ("taps", "scans", "checkins", "views"):
                with Vertical(classes="kpi"):
                    yield Static("", id=f"kpi-{kind}", markup=False)
                    yield Sparkline([], id=f"spark-{kind}")
            yield Static("", id="kpi-survey", markup=False)
        with Horizontal(id="staff-actions"):
            yield Button(t("staff.reload"), id="reload")
            yield Button(t("staff.test-reader"), id="test-reader")
            yield Button(t("staff.exit"), id="exit", variant="error")
        yield Static("", id="staff-message", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#queue", DataTable)
        table.add_columns("order", "name", "waiting")
        self.show_today()
        self.refresh_data()
        self.set_interval(REFRESH_S, self.refresh_data)

    def show_today(self, agent: dict[str, Any] | None = None) -> None:
        """Today's numbers: the agent's hourly roll-ups (they survive restarts) when it
        answers, else what this kiosk has seen since it started."""
        stats = self.kiosk.stats
        summary = agent["summary"] if agent else {}
        hourly = agent["hourly"] if agent else {}
        for kind in ("taps", "scans", "checkins", "views"):
            total = int(summary.get(kind, 0)) if agent else stats.total(kind)
            conversion = summary.get("conversion.view_to_handoff") if agent \
                else stats.conversion()
            label = f"{kind}: {total}"
            if kind == "views" and conversion is not None:
                label += f" (hand-off {conversion:.0%})"
            self.query_one(f"#kpi-{kind}", Static).update(label)
            series = hourly.get(kind, [0.0] * 24) if agent else stats.hourly[kind]
            self.query_one(f"#spark-{kind}", Sparkline).data = series
        avg = summary.get("survey.average") if agent else stats.survey_average()
        answers = int(summary.get("survey.answers", 0)) if agent else len(stats.scores)
        top = 10 if self.kiosk.bundle.survey.scale == 11 else 5
        self.query_one("#kpi-survey", Static).update(
            f"survey: {avg} / {top} ({answers} answers)" if avg is not None
            else "survey: no answers yet")

    @work(exclusive=True, group="staff-refresh")
    async def refresh_data(self) -> None:
        health = self.query_one("#health", Static)
        try:
            queue = (await self.kiosk.link.request({"op": "queue"}))["queue"]
            status = (await self.kiosk.link.request({"op": "status"}))["status"]
            kpis = await self.kiosk.link.request({"op": "kpis"})
        except KioskError as exc:
            self.show_today()
            health.update(f"agent: not reachable ({exc})")
            return
        self.show_today(kpis)
        health.update("\n".join(health_lines(status)))
        table = self.query_one("#queue", DataTable)
        table.clear()
        now = time.time()
        for row in queue:
            table.add_row(row["order_id"], row["first_name"],
                          waiting(now - (row["checked_in_at"] or now)), key=row["order_id"])

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id
        message = self.query_one("#staff-message", Static)
        if bid == "exit":
            self.kiosk.leave_staff_mode()
        elif bid == "reload":
            message.update(self.kiosk.reload_content())
            self.query_one("#content-problem", Static).update(self.kiosk.content_problem)
        elif bid == "test-reader":
            self.waiting_for_test = True
            message.update("Tap a tag or show a code now ...")
        elif bid == "handover":
            table = self.query_one("#queue", DataTable)
            if table.row_count == 0:
                return
            order = str(table.get_row_at(table.cursor_row)[0])
            try:
                await self.kiosk.link.request({"op": "handover", "order": order})
            except KioskError as exc:
                message.update(f"could not record the hand-over: {exc}")
                return
            message.update(f"{order} handed over")
            self.refresh_data()

    def hardware_event(self, event: dict[str, Any]) -> None:
        """A tap or scan while staff mode is open: the reader test's answer."""
        if not self.waiting_for_test:
            return
        self.waiting_for_test = False
        data = event.get("data") or {}
        if event.get("type") == "o2o.nfc.tap":
            text = (f"NFC OK: {data.get('product')} ({data.get('tag', {}).get('kind')}), "
                    f"NDEF {data.get('ndef')}, read in {data.get('read_ms')} ms")
        else:
            text = (f"camera OK: code read, class {data.get('class')}"
                    + (f" ({data.get('reason')})" if data.get("reason") else ""))
        self.query_one("#staff-message", Static).update(text)
