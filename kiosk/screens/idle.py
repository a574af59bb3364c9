"""'Are you still there?': shown before an idle kiosk starts over (WCAG 2.2.1: the shopper
is warned and can ask for more time with one tap)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class IdleWarning(ModalScreen[bool]):
    def __init__(self, seconds: int) -> None:
        super().__init__(id="idle-warning")
        self.seconds = seconds

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def compose(self) -> ComposeResult:
        t = self.kiosk.translator
        with Vertical(id="idle-box"):
            yield Static(t("idle.title"), id="idle-title", markup=False)
            yield Static(t("idle.text", seconds=self.seconds), id="idle-text", markup=False)
            yield Button(t("idle.stay"), id="stay", variant="primary")

    def count(self, seconds: int) -> None:
        self.seconds = seconds
        self.query_one("#idle-text", Static).update(
            self.kiosk.translator("idle.text", seconds=seconds))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stay":
            self.dismiss(True)
