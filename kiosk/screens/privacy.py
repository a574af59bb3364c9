"""The privacy notice in plain words, with a QR code to the full policy."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kiosk.screens.base import ShopperScreen
from kiosk.widgets.qr_view import QrView


class PrivacyScreen(ShopperScreen):
    name_for_events = "privacy"

    def __init__(self) -> None:
        super().__init__(classes="privacy")

    def body(self) -> ComposeResult:
        with Horizontal(classes="top-row"):
            yield Button(self.t("common.back"), id="back")
            yield Static(self.t("privacy.title"), id="title", markup=False)
        with Horizontal(id="privacy-main"):
            yield Static(self.t("privacy.text"), id="text", markup=False)
            if self.kiosk.bundle.privacy_url:
                with Vertical(id="privacy-box"):
                    yield QrView(self.kiosk.bundle.privacy_url, id="privacy-qr")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "back":
            return
        if len(self.app.screen_stack) > 3:  # opened from a check-in: back to it
            self.app.pop_screen()
        else:
            self.kiosk.home()
