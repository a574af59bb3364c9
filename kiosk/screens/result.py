"""The end of a check-in: a clear confirmation with the shopper's first name, or a kind
reason and the way to staff. Done leads to the one-tap survey after a success."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Button, Static

from kiosk.screens.base import ShopperScreen

SUCCESS = ("pickup.ok", "pickup.ready", "appointment.ok", "loyalty.ok")


class ResultScreen(ShopperScreen):
    name_for_events = "result"

    def __init__(self, outcome: str, values: dict[str, Any]) -> None:
        super().__init__(classes="result")
        self.outcome = outcome
        self.values = values

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    def body(self) -> ComposeResult:
        yield Static(self.t(f"result.{self.outcome}", **self.values), id="message",
                     classes="ok" if self.ok else "problem", markup=False)
        yield Button(self.t("common.done"), id="done", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "done":
            if self.ok:
                self.kiosk.go("survey")
            else:
                self.kiosk.home()
