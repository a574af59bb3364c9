"""The end of a check-in: a clear confirmation with the shopper's first name, or a kind
reason and the way to staff. Done leads to the one-tap survey after a success."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Button, Static

from kiosk.safe_text import NAME_MAX, plain
from kiosk.screens.base import ShopperScreen

SUCCESS = ("pickup.ok", "pickup.ready", "appointment.ok", "loyalty.ok")


class ResultScreen(ShopperScreen):
    name_for_events = "result"

    def __init__(self, outcome: str, values: dict[str, Any], follow: str = "") -> None:
        super().__init__(classes="result")
        self.follow = follow
        self.outcome = plain(outcome, NAME_MAX)
        # a first name is a short line of data, whatever an orders import put there
        self.values = {k: plain(v, NAME_MAX) if k == "name" else v for k, v in values.items()}

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    def body(self) -> ComposeResult:
        key = f"result.{self.outcome}"
        if key not in self.kiosk.catalogues["en"]:  # an answer the kiosk has no words for
            key = "result.invalid"
        yield Static(self.t(key, **self.values), id="message",
                     classes="ok" if self.ok else "problem", markup=False)
        # the staff call or pickup follow-up: "we have let the team know", then who is coming
        line = Static(self.follow, id="follow-up", markup=False)
        line.display = bool(self.follow)  # no empty line taking a row on a short screen
        yield line
        yield Button(self.t("common.done"), id="done", variant="primary")

    def follow_up(self, text: str) -> None:
        self.follow = text
        line = self.query_one("#follow-up", Static)
        line.update(text)
        line.display = bool(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "done":
            if self.ok:
                self.kiosk.go("survey")
            else:
                self.kiosk.home()
