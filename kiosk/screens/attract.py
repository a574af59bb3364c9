"""The attract loop and home: the retailer's logo, offers from the content bundle rotating
with their pictures, the tap-or-scan hint, and the big buttons to start a check-in, browse
offers or read the privacy notice."""

from __future__ import annotations

from typing import Final

from textual import events
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.geometry import Size
from textual.widgets import Button, Static

from kiosk.content import LOGO, text_in
from kiosk.safe_text import para, plain
from kiosk.screens.base import TALL_ROWS, ShopperScreen
from kiosk.widgets.image_view import ImageView
from kiosk.widgets.pickup_board import PickupBoard

SLIDE_S = 8.0
# rows the logo and the slide's picture take: where rows are few (a -short grid) the slide's
# own inside, the logo moving into the slide; more on a portrait screen's long grid
SHORT_PICTURE_ROWS: Final = 4
PICTURE_ROWS: Final = 6
TALL_PICTURE_ROWS: Final = 14
TALL_GRID: Final = 50


class AttractScreen(ShopperScreen):
    name_for_events = "attract"

    def __init__(self) -> None:
        super().__init__(id="attract")
        self.slide = 0

    def body(self) -> ComposeResult:
        logo = self.kiosk.images.get(LOGO)
        rows = self.picture_rows(self.app.size)
        if logo is not None:
            yield ImageView(logo, max_rows=rows, id="logo")
        with Horizontal(id="slide"):
            if logo is not None:
                yield ImageView(logo, max_rows=rows, id="slide-logo")
            with Vertical(id="slide-words"):
                yield Static("", id="slide-title", markup=False)
                yield Static("", id="slide-text", markup=False)
            yield ImageView(max_rows=rows, id="slide-picture")
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
        self.slides = self.set_interval(SLIDE_S, self.next_slide)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.slide:  # back home: the loop starts again at its first slide, whole
            self.slide = 0
            self.show_slide()
            self.slides.reset()

    def current_page_id(self) -> str | None:
        ids = self.kiosk.bundle.attract
        return ids[self.slide % len(ids)] if ids else None

    def show_slide(self) -> None:
        personal = self.kiosk.personal_text()
        self.set_class(bool(personal), "-personal")
        if personal:  # the one opted-in shopper at the kiosk: their offer, never their name
            self.query_one("#slide-title", Static).update(self.t("attract.for-you"))
            self.query_one("#slide-text", Static).update(personal)
            self.query_one("#slide-picture", ImageView).show(None)
            return
        pid = self.current_page_id()
        if pid is None:
            return
        # the A/B variant of this session (kiosk/session.py): the card keeps what the slide
        # promised
        page = self.kiosk.session.shown(self.kiosk.bundle.pages[pid])
        lang = self.kiosk.translator.language
        offer = text_in(page.offer, lang)
        # bundle texts are data: shown literally (the widgets take no markup), cleaned, cut
        self.query_one("#slide-title", Static).update(plain(text_in(page.title, lang)))
        self.query_one("#slide-text", Static).update(
            plain(offer) if offer else para(text_in(page.text, lang)))
        images = self.kiosk.images
        self.query_one("#slide-picture", ImageView).show(
            images.get(f"{pid}/{page.variant}") or images.get(pid))

    @staticmethod
    def picture_rows(size: Size) -> int:
        """Set when composed (for the grid the screen opens at: no second layout pass that
        would move the buttons under a first tap) and again when the grid changes."""
        return (SHORT_PICTURE_ROWS if size.height < TALL_ROWS else
                TALL_PICTURE_ROWS if size.height >= TALL_GRID else PICTURE_ROWS)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        rows = self.picture_rows(event.size)
        for view in self.query(ImageView):
            if view.max_rows != rows:
                view.max_rows = rows
                view.refresh(layout=True)

    def next_slide(self) -> None:
        self.slide += 1
        self.show_slide()

    def on_click(self, event: object) -> None:
        widget = getattr(event, "widget", None)
        if widget is not None and widget.id in ("slide", "slide-words", "slide-title",
                                                   "slide-text", "slide-picture"):
            pid = self.current_page_id()
            if pid and not self.has_class("-personal"):
                self.kiosk.open_page(pid, "touch")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        target = (event.button.id or "").removeprefix("go-")
        self.kiosk.go(target)
