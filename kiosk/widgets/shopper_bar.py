"""The bar at the foot of every shopper screen: a button per language and the call-staff
button. It only says what was pressed; the app switches language or calls staff."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button


class ShopperBar(Horizontal):
    class LanguagePicked(Message):
        def __init__(self, code: str) -> None:
            super().__init__()
            self.code = code

    class StaffCalled(Message):
        pass

    def __init__(self, languages: list[tuple[str, str]], current: str, call_label: str) -> None:
        super().__init__()
        self.languages = languages
        self.current = current
        self.call_label = call_label

    def compose(self) -> ComposeResult:
        for code, name in self.languages:
            yield Button(name, id=f"lang-{code}", classes="lang" + (
                " current" if code == self.current else ""))
        yield Button(self.call_label, id="call-staff", variant="warning")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        bid = event.button.id or ""
        if bid == "call-staff":
            self.post_message(self.StaffCalled())
        elif bid.startswith("lang-"):
            self.post_message(self.LanguagePicked(bid.removeprefix("lang-")))
