"""A touch keypad for order and booking codes: digits and the letters used in codes, big
keys, a clear and a submit key. Keys say what was pressed; the screen keeps the code."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Button

KEYS = "1234567890ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: they read as 1 and 0


class Keypad(Grid):
    class Pressed(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key  # a character, "clear" or "submit"

    def __init__(self, clear_label: str, submit_label: str, keys: str = KEYS) -> None:
        super().__init__(id="keypad", classes="digits" if keys.isdigit() else "")
        self.clear_label = clear_label
        self.submit_label = submit_label
        self.keys = keys

    def compose(self) -> ComposeResult:
        for ch in self.keys:
            key = Button(ch, id=f"key-{ch}", classes="key")
            # a Button ignores presses during its 0.2 s "pressed" look; codes repeat
            # characters ("77"), so keys take every press
            key.active_effect_duration = 0
            yield key
        yield Button(self.clear_label, id="key-clear", classes="key wide", variant="default")
        yield Button(self.submit_label, id="key-submit", classes="key wide", variant="success")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Pressed((event.button.id or "").removeprefix("key-")))
