"""Staff mode: the pickup queue with waiting times in colour and a "handed over" action,
device health (uplink, outbox depth and age, each driver's state), today's numbers with
sparklines, and manual controls: reload content, test a reader, leave."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Static

from agent.contracts import events as ev
from agent.contracts.bus import Op
from agent.contracts.status import Status
from kiosk.errors import KioskError
from kiosk.safe_text import NAME_MAX, cell, plain
from kiosk.screens.base import fit_classes

if TYPE_CHECKING:
    from kiosk.app import KioskApp
    from kiosk.i18n import Translator

REFRESH_S = 2.0
WAIT_COLOURS = ((180, "green"), (480, "yellow"))  # seconds waited -> colour; beyond: red
BARS: Final = "▁▂▃▄▅▆▇█"  # an hour's count, from none to the day's busiest
# today's rows: the agent's roll-up key and the catalogue key of the word staff read
KPIS: Final = (("taps", "staff.kpi.taps"), ("scans", "staff.kpi.scans"),
               ("checkins", "staff.kpi.checkins"), ("views", "staff.kpi.views"))
QUEUE_MAX: Final = 200  # rows shown: a counter's queue, not the whole orders table


def sparkline(series: list[float]) -> str:
    """One bar character per hour, scaled to the day's busiest hour: a column that reads
    in any terminal font (Textual's Sparkline widget needs rows and width it rarely gets)."""
    top = max(series, default=0.0)
    if top <= 0:
        return BARS[0] * len(series)
    return "".join(BARS[min(len(BARS) - 1, max(0, round(v / top * (len(BARS) - 1))))]
                   for v in series)


def waiting(seconds: float) -> Text:
    colour = next((c for limit, c in WAIT_COLOURS if seconds < limit), "red")
    return Text(f"{int(seconds // 60)}:{int(seconds % 60):02d}", style=f"bold {colour}")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def health_lines(st: Status, t: Translator) -> list[str]:
    """Device health for staff in their language; every value from the agent's status is
    data, shown plain (a section's inner parts are read as whatever they turn out to be)."""
    u, o = st["uplink"], st["outbox"]
    lines = [t("staff.health.uplink", state=str(u.get("state")), url=u.get("url", "")),
             t("staff.health.outbox", depth=str(o.get("depth", "?")),
               age=round(_number(o.get("oldest_age_s")) or 0))]
    if "ble" in st:
        lines.append(t("staff.health.ble",
                       state=str(_dict(_dict(st["ble"]).get("scanner")).get("state"))))
    if "nfc" in st:
        r = _dict(_dict(st["nfc"]).get("reader"))
        errors = r.get("recent_errors")
        lines.append(t("staff.health.nfc", state=str(r.get("state"))) + (
            f" - {errors[-1]}" if isinstance(errors, list) and errors else ""))
    if "qr" in st:
        cam = _dict(_dict(st["qr"]).get("camera"))
        lines.append(t("staff.health.camera", state=str(cam.get("state"))) + (
            f" - {cam['last_error']}" if cam.get("state") != "capturing" and
            cam.get("last_error") else ""))
    return [plain(line) for line in lines]


def fill_queue(table: DataTable[Any], rows: Any, now: float) -> None:
    """The pickup queue from the agent's answer. Names and order ids are data from orders
    imports and documents: Text cells (a str cell is parsed as markup), cleaned and cut;
    the row key keeps the order id as it is, for the hand-over."""
    table.clear()
    seen: set[str] = set()
    for row in rows if isinstance(rows, list) else []:
        if len(seen) >= QUEUE_MAX:
            break
        row = _dict(row)
        order = row.get("order_id")
        if not isinstance(order, str) or order in seen:
            continue  # no id to hand over: not a row staff can act on
        seen.add(order)
        since = _number(row.get("checked_in_at"))
        table.add_row(cell(order, NAME_MAX), cell(row.get("first_name"), NAME_MAX),
                      waiting(max(0.0, now - (since if since is not None else now))),
                      key=order)


class StaffScreen(Screen[None]):
    staff = True  # hardware events do not start shopper flows while staff mode is open

    def __init__(self) -> None:
        super().__init__(id="staff")
        self.waiting_for_test = False
        self.queue_total = 0  # orders waiting, as the agent counts them (more than it sends)

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def compose(self) -> ComposeResult:
        t = self.kiosk.translator
        with Horizontal(id="staff-top"):
            with Vertical(id="queue-box"):
                yield Static(t("staff.queue"), id="queue-heading", classes="heading",
                             markup=False)
                yield DataTable(id="queue", cursor_type="row")
                yield Button(t("staff.handed"), id="handover", variant="success")
            with Vertical(id="health-box"):
                yield Static(t("staff.health"), classes="heading", markup=False)
                yield Static("", id="health", markup=False)
                yield Static(self.kiosk.content_problem, id="content-problem", markup=False)
        yield Static(t("staff.today"), classes="heading", markup=False)
        yield DataTable(id="today", cursor_type="none", zebra_stripes=True)
        with Horizontal(id="staff-actions"):
            yield Button(t("staff.reload"), id="reload")
            yield Button(t("staff.test-reader"), id="test-reader")
            yield Button(t("staff.exit"), id="exit", variant="error")
        yield Static("", id="staff-message", markup=False)

    def on_mount(self) -> None:
        t = self.kiosk.translator
        table = self.query_one("#queue", DataTable)
        table.add_columns(t("staff.col.order"), t("staff.col.name"), t("staff.col.waiting"))
        self.query_one("#today", DataTable).add_columns(
            "", t("staff.col.today"), "", t("staff.col.by-hour"))
        self.show_today()
        self.refresh_data()
        self.set_interval(REFRESH_S, self.refresh_data)

    def show_today(self, agent: dict[str, Any] | None = None) -> None:
        """Today's numbers: the agent's hourly roll-ups (they survive restarts) when it
        answers, else what this kiosk has seen since it started."""
        stats, t = self.kiosk.stats, self.kiosk.translator
        summary = _dict(agent.get("summary")) if agent else {}
        hourly = _dict(agent.get("hourly")) if agent else {}
        table = self.query_one("#today", DataTable)
        table.clear()
        for kind, label in KPIS:
            total = int(_number(summary.get(kind)) or 0) if agent else stats.total(kind)
            conversion = _number(summary.get("conversion.view_to_handoff")) if agent \
                else stats.conversion()
            note = t("staff.handoff-rate", rate=f"{conversion:.0%}") if kind == "views" \
                and conversion is not None else ""
            raw = hourly.get(kind) if agent else stats.hourly[kind]
            series = [_number(v) or 0.0 for v in raw[:24]] if isinstance(raw, list) else []
            table.add_row(t(label), Text(str(total), justify="right"), note,
                          Text(sparkline(series or [0.0] * 24), style="green"), key=kind)
        avg = _number(summary.get("survey.average")) if agent else stats.survey_average()
        answers = int(_number(summary.get("survey.answers")) or 0) if agent \
            else stats.answers
        top = 10 if self.kiosk.bundle.survey.scale == 11 else 5
        table.add_row(t("staff.kpi.survey"),
                      Text(f"{avg} / {top}" if avg is not None else "-", justify="right"),
                      t("staff.answers", count=answers) if avg is not None
                      else t("staff.no-answers"), "", key="survey")

    @work(exclusive=True, group="staff-refresh")
    async def refresh_data(self) -> None:
        health = self.query_one("#health", Static)
        try:
            reply = await self.kiosk.link.request({"op": Op.QUEUE})
            queue = reply.get("queue")
            status = await self.kiosk.link.status()
            kpis = await self.kiosk.link.request({"op": Op.KPIS})
        except KioskError as exc:
            self.show_today()
            health.update(plain(self.kiosk.translator("staff.agent-unreachable",
                                                      reason=str(exc))))
            return
        self.show_today(kpis)
        health.update("\n".join(health_lines(status, self.kiosk.translator)))
        fill_queue(self.query_one("#queue", DataTable), queue, time.time())
        self.queue_total = int(_number(reply.get("total")) or 0)
        self.show_more()

    def show_more(self) -> None:
        """"N more" beside the heading for the orders waiting beyond the rows the table
        shows: those the agent did not send and those below the table's last row."""
        table = self.query_one("#queue", DataTable)
        fits = max(0, table.size.height - table.header_height) if table.size.height \
            else table.row_count
        more = max(0, self.queue_total, table.row_count) - min(table.row_count, fits)
        t = self.kiosk.translator
        self.query_one("#queue-heading", Static).update(
            t("staff.queue-more", more=more) if more > 0 else t("staff.queue"))

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id
        message = self.query_one("#staff-message", Static)
        if bid == "exit":
            self.kiosk.leave_staff_mode()
        elif bid == "reload":
            message.update(plain(self.kiosk.reload_content()))
            self.query_one("#content-problem", Static).update(self.kiosk.content_problem)
        elif bid == "test-reader":
            self.waiting_for_test = True
            message.update(self.kiosk.translator("staff.test-prompt"))
        elif bid == "handover":
            table = self.query_one("#queue", DataTable)
            if table.row_count == 0:
                return
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
            order = str(row_key.value)  # the id as the agent knows it, not as shown
            try:
                await self.kiosk.link.request({"op": Op.HANDOVER, "order": order})
            except KioskError as exc:
                message.update(plain(self.kiosk.translator("staff.handover-failed",
                                                           reason=str(exc))))
                return
            message.update(plain(self.kiosk.translator("staff.handed-over", order=order)))
            self.refresh_data()

    def on_resize(self, event: events.Resize) -> None:
        fit_classes(self, event.size)
        self.call_after_refresh(self.show_more)  # the table's rows changed with the grid

    def on_screen_resume(self) -> None:
        fit_classes(self, self.app.size)

    def hardware_event(self, event: Mapping[str, Any]) -> None:
        """A tap or scan while staff mode is open: the reader test's answer."""
        if not self.waiting_for_test:
            return
        self.waiting_for_test = False
        data = _dict(event.get("data"))
        t = self.kiosk.translator
        if event.get("type") == ev.NFC_TAP:
            text = t("staff.test.nfc", product=str(data.get("product")),
                     kind=str(_dict(data.get("tag")).get("kind")), ndef=str(data.get("ndef")),
                     ms=str(data.get("read_ms")))
        else:
            text = t("staff.test.camera", kind=str(data.get("class"))) + (
                f" ({data.get('reason')})" if data.get("reason") else "")
        self.query_one("#staff-message", Static).update(plain(text))
