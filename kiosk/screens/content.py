"""A content card: title, text, offer and price, and — on request — the QR hand-off that
takes the page to the shopper's phone, tagged with where it came from.

One card screen lives for the whole session and is filled in place (`show`): a shopper
tapping one shelf tag after another changes a few texts, not a whole screen — a new screen
per tap costs a full compose and two full repaints (about 100 ms here against 10 ms)."""

from __future__ import annotations

from typing import Final

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.widgets import Button, Static

from agent.contracts import events as ev
from kiosk.content import Page, text_in
from kiosk.handoff import handoff_url, new_token
from kiosk.safe_text import para, plain
from kiosk.screens.base import ShopperScreen
from kiosk.widgets.agent_banner import AgentBanner
from kiosk.widgets.image_view import ImageView
from kiosk.widgets.one_pass import OnePassScroll, OnePassStatic
from kiosk.widgets.qr_view import QrView

BAR_ROWS: Final = 3  # the shopper bar's height (theme.tcss)


class ContentScreen(ShopperScreen):
    name_for_events = "content"

    def __init__(self, page: Page, medium: str) -> None:
        super().__init__(classes="content")
        self.page = page
        self.medium = medium
        self.shown_qr = False
        self._qr_for: str | None = None  # the link the mounted QR code shows
        self.token = ""  # the shown hand-off's: its link's o2o_h and its event's id

    @property
    def url(self) -> str:
        k = self.kiosk
        return handoff_url(self.page.link, self.medium, self.page.campaign,
                           k.cfg.device.store, k.cfg.device.id, self.token)

    def body(self) -> ComposeResult:
        # the QR code has the card's whole height beside the text (below it in portrait):
        # a tagged link is a 49-module code, 25 rows of half blocks. The texts change in
        # place with each page: laid out in one pass (kiosk/widgets/one_pass.py)
        with Horizontal(id="card"):
            with Vertical(id="card-text"):
                with Horizontal(classes="top-row"):
                    yield Button(self.t("common.back"), id="back")
                    yield OnePassStatic("", id="title", markup=False)
                # the agent notice, here beside the code where the code needs the top rows
                yield OnePassStatic(self.t("agent.down"), id="card-notice", markup=False)
                yield OnePassStatic("", id="offer", markup=False)
                yield OnePassStatic("", id="price", markup=False)
                # the rows left between the price and the controls: a long text scrolls
                # there (a swipe, or the bar), so the hand-off button stays on the card
                with OnePassScroll(id="text-box"):
                    yield OnePassStatic("", id="text", markup=False)
                yield Button(self.t("content.handoff"), id="handoff", variant="success")
                yield Static(self.t("content.handoff"), id="handoff-label", markup=False)
                # the offers, one after the other: arrows read in every language
                with Horizontal(id="offer-nav"):
                    prev, after = (Button("◀", id="offer-prev", classes="arrow"),
                                   Button("▶", id="offer-next", classes="arrow"))
                    # quick taps through the offers each count (a Button ignores presses
                    # during its 0.2 s "pressed" look)
                    prev.active_effect_duration = after.active_effect_duration = 0
                    yield prev
                    yield OnePassStatic("", id="offer-at", markup=False)
                    yield after
            yield Vertical(id="handoff-box")
            with Vertical(id="image-box"):  # the page's picture while no code is shown
                yield ImageView(id="card-picture")

    def on_mount(self) -> None:
        self.fill()

    async def recompose(self) -> None:
        self._qr_for = None  # a new language: everything is composed anew
        await super().recompose()
        self.fill()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.fill()

    def show(self, page: Page, medium: str) -> None:
        self.page, self.medium, self.shown_qr = page, medium, False
        if self.is_mounted:
            self.fill()

    def fill(self) -> None:
        lang = self.kiosk.translator.language
        p = self.page

        def put(selector: str, text: str) -> None:
            widget = self.query_one(selector, Static)
            widget.update(text)
            widget.display = bool(text)

        # bundle texts are data: shown literally (the widgets take no markup), cleaned, cut
        put("#title", plain(text_in(p.title, lang)))
        put("#offer", plain(text_in(p.offer, lang)))
        put("#text", para(text_in(p.text, lang)))
        scroller = self.query_one("#text-box", OnePassScroll)
        has_text = bool(text_in(p.text, lang))
        if scroller.display != has_text:
            scroller.display = has_text
        if scroller.scroll_y:
            scroller.scroll_home(animate=False)  # each page opens at its top
        put("#price", self.t("content.price", price=p.price) if p.price else "")
        offers = self.kiosk.offer_ids()
        nav = self.query_one("#offer-nav")
        nav.display = len(offers) > 1 and p.id in offers
        if nav.display:
            self.query_one("#offer-at", Static).update(
                f"{offers.index(p.id) + 1} / {len(offers)}")
        self.query_one("#handoff", Button).display = bool(p.link) and not self.shown_qr
        # the picture column keeps its place (blank for a page without a picture) so the
        # text column keeps its width: showing and hiding it re-wrapped and re-laid out the
        # whole card on each tap (bench-kiosk p99 37 -> 72 ms); only the hand-off code,
        # once per card, takes its place
        self.query_one("#image-box").display = not self.shown_qr
        # an A/B variant's own picture, else the page's
        images = self.kiosk.images
        self.query_one(ImageView).show(images.get(f"{p.id}/{p.variant}") or images.get(p.id))
        self.set_class(self.shown_qr, "-code")
        box = self.query_one("#handoff-box")
        box.display = self.shown_qr
        self.query_one("#handoff-label").display = self.shown_qr
        want = self.url if self.shown_qr else None
        if want != self._qr_for:
            box.query(QrView).remove()
            if want is not None:
                box.mount(QrView(want, id="handoff-qr"))
            self._qr_for = want
        self._fit_qr(self.app.size)

    def _fit_qr(self, size: Size) -> None:
        """Where the hand-off code and the shopper bar do not both fit (a 24-row terminal,
        the 7" screen's grid while the agent notice is up) the code wins while it is shown:
        Back, on the card, brings the bar back. Where the code and the agent notice above
        it do not fit either (80x24), the notice moves into the card's column beside the
        code: the shopper still reads it."""
        codes = self.query(QrView)
        code_rows = min(len(d) for d in codes.first().drawings) if codes else 0
        need = code_rows + BAR_ROWS
        banner = self.query_one(AgentBanner)
        down = not self.kiosk.agent_up
        notice_rows = banner.get_content_height(size, size, max(1, size.width - 4)) \
            if down else 0  # its text wraps to the width: as many rows as it takes
        need += notice_rows
        qr_only = self.shown_qr and size.height < need
        self.set_class(qr_only, "-qr-only")
        beside = qr_only and down and size.height < code_rows + notice_rows
        banner.display = down and not beside
        self.query_one("#card-notice").display = beside

    def refit(self) -> None:
        """The agent notice came or went: the rows left for the code changed."""
        self._fit_qr(self.app.size)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        self._fit_qr(event.size)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.kiosk.home()
        elif event.button.id in ("offer-prev", "offer-next"):
            offers = self.kiosk.offer_ids()
            step = 1 if event.button.id == "offer-next" else -1
            at = offers.index(self.page.id) if self.page.id in offers else 0
            self.kiosk.open_page(offers[(at + step) % len(offers)], "touch")
        elif event.button.id == "handoff":
            self.shown_qr, self.token = True, new_token()
            self.fill()
            handoff = ev.KioskHandoff(
                page=self.page.id, campaign=self.page.campaign, medium=self.medium,
                token=self.token, content_version=self.kiosk.bundle.version)
            if self.page.variant:  # the A/B variant the card shows (kiosk/session.py)
                handoff["variant"] = self.page.variant
            if self.kiosk.session.first_handoff(self.page.id):
                handoff["first"] = True
            self.kiosk.record(ev.KIOSK_HANDOFF, handoff)
