"""A signed offer code shown to the camera: "Valid: 20 % off coffee — show this at the till",
or why not (used, expired, for another store, not genuine). The agent judged the code (its
signature, expiry and store offline, its one use in the ledger); this screen only says so.
Done goes home: an offer is not a check-in, so no survey follows."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.widgets import Button, Static

from kiosk.screens.result import ResultScreen

# the offer text id as the code carries it (drivers/qr/offer.py TEXT_ID): anything else
# names no words of ours
_TEXT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
OUTCOMES = ("offer.valid", "offer.used", "offer.expired", "offer.other-store", "offer.invalid")


class OfferScreen(ResultScreen):
    name_for_events = "offer"

    def __init__(self, outcome: str, offer_id: str) -> None:
        super().__init__(outcome if outcome in OUTCOMES else "offer.invalid", {})
        self.offer_id = offer_id if _TEXT_ID.fullmatch(offer_id) else ""

    @property
    def ok(self) -> bool:
        return self.outcome == "offer.valid"

    def words(self) -> str:
        """The offer's words in the shopper's language ("20 % off coffee"), or "your offer"
        for a text id the kiosk has no words for."""
        key = f"offer.text.{self.offer_id}"
        if self.offer_id and key in self.kiosk.catalogues["en"]:
            return self.t(key)
        return self.t("offer.text.default")

    def body(self) -> ComposeResult:
        yield Static(self.t(f"result.{self.outcome}", offer=self.words()), id="message",
                     classes="ok" if self.ok else "problem", markup=False)
        yield Button(self.t("common.done"), id="done", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "done":
            event.prevent_default()  # not the result screen's: that leads to the survey
            self.kiosk.home()
