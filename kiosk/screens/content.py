"""A content card: title, text, offer and price, and — on request — the QR hand-off that
takes the page to the shopper's phone, tagged with where it came from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kiosk.content import Page, text_in
from kiosk.handoff import handoff_url
from kiosk.screens.base import ShopperScreen
from kiosk.widgets.qr_view import QrView


class ContentScreen(ShopperScreen):
    name_for_events = "content"

    def __init__(self, page: Page, medium: str) -> None:
        super().__init__(classes="content")
        self.page = page
        self.medium = medium
        self.shown_qr = False

    @property
    def url(self) -> str:
        k = self.kiosk
        return handoff_url(self.page.link, self.medium, self.page.campaign,
                           k.cfg.device.store, k.cfg.device.id)

    def body(self) -> ComposeResult:
        lang = self.kiosk.translator.language
        p = self.page
        with Horizontal(classes="top-row"):
            yield Button(self.t("common.back"), id="back")
            yield Static(text_in(p.title, lang), id="title", markup=False)
        with Horizontal(id="card"):
            with Vertical(id="card-text"):
                if p.offer:
                    yield Static(text_in(p.offer, lang), id="offer", markup=False)
                if p.text:
                    yield Static(text_in(p.text, lang), id="text", markup=False)
                if p.price:
                    yield Static(self.t("content.price", price=p.price), id="price",
                                 markup=False)
                if p.link and not self.shown_qr:
                    yield Button(self.t("content.handoff"), id="handoff", variant="success")
            if p.link and self.shown_qr:
                with Vertical(id="handoff-box"):
                    yield QrView(self.url, id="handoff-qr")
                    yield Static(self.t("content.handoff"), id="handoff-label", markup=False)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.kiosk.home()
        elif event.button.id == "handoff":
            self.shown_qr = True
            await self.recompose()
            self.kiosk.record("o2o.kiosk.handoff", {
                "page": self.page.id, "campaign": self.page.campaign, "medium": self.medium})
