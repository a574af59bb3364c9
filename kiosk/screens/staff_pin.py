"""The way into staff mode: a PIN on a digit keypad, shown as dots, with lock-out after
repeated wrong PINs. With no PIN configured, staff mode stays closed: whoever tapped ⚙ (a
shopper, most likely) is asked to find staff in their language, and how to set a PIN goes to
the kiosk's log, where staff setting it up look."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Static

from agent.contracts import events as ev
from kiosk.widgets.keypad import Keypad

if TYPE_CHECKING:
    from kiosk.app import KioskApp


log = logging.getLogger("o2o-edge.kiosk")
NO_PIN: Final = ("staff mode is closed on this kiosk: set [kiosk] staff_pin_hash to the line "
                 "'o2o-edge kiosk pin' prints")


class StaffPinScreen(Screen[None]):
    def __init__(self) -> None:
        super().__init__(id="staff-pin")
        self.pin = ""

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def compose(self) -> ComposeResult:
        t = self.kiosk.translator
        with Vertical(id="body"):
            yield Static(t("staff.pin.title"), id="title", markup=False)
            yield Static("", id="pin", markup=False)
            yield Static(self._lock_text(), id="pin-message", markup=False)
            keypad = Keypad(t("checkin.clear"), t("staff.pin.ok"), keys="1234567890")
            keypad.display = bool(self.kiosk.pin_gate.stored)  # no PIN: nothing to type
            yield keypad
            yield Button(t("common.back"), id="back")

    def on_mount(self) -> None:
        if not self.kiosk.pin_gate.stored:
            log.warning(NO_PIN)

    def _lock_text(self) -> str:
        gate = self.kiosk.pin_gate
        if not gate.stored:
            return self.kiosk.translator("staff.pin.closed")
        left = gate.locked_for()
        return self.kiosk.translator("staff.pin.locked", seconds=round(left)) if left else ""

    def on_keypad_pressed(self, event: Keypad.Pressed) -> None:
        message = self.query_one("#pin-message", Static)
        if event.key == "clear":
            self.pin = ""
        elif event.key == "submit":
            gate = self.kiosk.pin_gate
            ok = gate.check(self.pin)
            self.pin = ""
            if ok:
                self.kiosk.enter_staff_mode()
                return
            locked = self._lock_text()
            message.update(locked or self.kiosk.translator("staff.pin.wrong",
                                                            left=gate.tries_left()))
            self.kiosk.record(ev.KIOSK_STAFF, ev.KioskStaff(action="pin-refused",
                                                            locked=bool(gate.locked_for())))
        elif len(self.pin) < 12:
            self.pin += event.key
        self.query_one("#pin", Static).update("●" * len(self.pin))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.kiosk.home()
