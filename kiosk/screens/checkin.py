"""Self-check-in by code: the shopper types the short code from their order or booking on
the keypad (or shows the order's QR code to the camera, which the app handles anywhere).
The privacy notice sits where the code is collected, with a QR to the full policy."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kiosk.screens.base import ShopperScreen
from kiosk.widgets.keypad import Keypad
from kiosk.widgets.qr_view import QrView

MAX_CODE = 10


class CheckinScreen(ShopperScreen):
    name_for_events = "checkin"

    def __init__(self, kind: str) -> None:
        super().__init__(classes="checkin")
        self.kind = kind  # "pickup" or "appointment"
        self.code = ""

    def body(self) -> ComposeResult:
        privacy = self.kiosk.bundle.privacy_url
        with Horizontal(classes="top-row"):
            yield Button(self.t("common.back"), id="back")
            yield Static(self.t(f"checkin.{self.kind}.title"), id="title", markup=False)
            if privacy:  # where the QR code has no room beside the keypad: one tap away
                yield Button(self.t("home.privacy"), id="privacy-more")
        yield Static(self.t(f"checkin.{self.kind}.hint"), id="hint", markup=False)
        yield Static(self.t("privacy.notice"), id="privacy-line", markup=False)
        with Horizontal(id="checkin-main"):
            with Vertical(id="entry"):
                yield Static(self._shown(), id="code", markup=False)
                yield Keypad(self.t("checkin.clear"), self.t("checkin.submit"))
            with Vertical(id="privacy-notice"):
                yield Static(self.t("privacy.notice"), markup=False)
                if privacy:
                    yield QrView(privacy, id="privacy-qr")

    def _shown(self) -> str:
        return f"{self.t('checkin.code')}: {self.code or '_'}"

    def on_keypad_pressed(self, event: Keypad.Pressed) -> None:
        if event.key == "clear":
            self.code = ""
        elif event.key == "submit":
            if self.code:
                self.kiosk.check_in({"kind": self.kind, "code": self.code}, via="code")
            return
        elif len(self.code) < MAX_CODE:
            self.code += event.key
        self.query_one("#code", Static).update(self._shown())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.kiosk.home()
        elif event.button.id == "privacy-more":
            self.kiosk.go("privacy")
