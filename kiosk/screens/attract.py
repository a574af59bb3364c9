"""The attract loop and home: offers from the content bundle rotating, the tap-or-scan hint,
and the big buttons to start a check-in, browse offers or read the privacy notice."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Static

from kiosk.content import text_in
from kiosk.safe_text import para, plain
from kiosk.screens.base import ShopperScreen
from kiosk.widgets.pickup_board import PickupBoard

SLIDE_S = 8.0


class AttractScreen(ShopperScreen):
    name_for_events = "attract"

    def __init__(self) -> None:
        super().__init__(id="attract")
        self.slide = 0

    def body(self) -> ComposeResult:
        with Vertical(id="slide"):
            yield Static("", id="slide-title", markup=False)
            yield Static("", id="slide-text", markup=False)
        if self.kiosk.bundle.pickup_board:
            yield PickupBoard()
        yield Static(self.t("attract.hint"), id="hint", markup=False)
        with Grid(id="home-buttons"):
            yield Button(self.t("home.checkin"), id="go-pickup", variant="primary")
            yield Button(self.t("home.appointment"), id="go-appointment", variant="primary")
            yield Button(self.t("home.browse"), id="go-browse")
            yield Button(self.t("home.privacy"), id="go-privacy")
        yield Button("⚙", id="go-staff", classes="corner")

    def on_mount(self) -> None:
        self.show_slide()
        self.set_interval(SLIDE_S, self.next_slide)

    def current_page_id(self) -> str | None:
        ids = self.kiosk.bundle.attract
        return ids[self.slide % len(ids)] if ids else None

    def show_slide(self) -> None:
        pid = self.current_page_id()
        if pid is None:
            return
        page = self.kiosk.bundle.pages[pid]
        lang = self.kiosk.translator.language
        offer = text_in(page.offer, lang)
        # bundle texts are data: shown literally (the widgets take no markup), cleaned, cut
        self.query_one("#slide-title", Static).update(plain(text_in(page.title, lang)))
        self.query_one("#slide-text", Static).update(
            plain(offer) if offer else para(text_in(page.text, lang)))

    def next_slide(self) -> None:
        self.slide += 1
        self.show_slide()

    def on_click(self, event: object) -> None:
        widget = getattr(event, "widget", None)
        if widget is not None and widget.id in ("slide", "slide-title", "slide-text"):
            pid = self.current_page_id()
            if pid:
                self.kiosk.open_page(pid, "touch")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        target = (event.button.id or "").removeprefix("go-")
        self.kiosk.go(target)
