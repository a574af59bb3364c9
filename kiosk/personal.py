"""The personal offer of the one opted-in app at the kiosk (kiosk/nearby.py says which): asked
of the agent (`personal-offer`, agent/contracts/offers.py: none for an app whose consent is
withdrawn), shown on the home screen without a name, and counted as a personalised view once
it is in front of the shopper.

The offer is asked again while an app is near: a consent withdrawn meanwhile takes it off the
screen (the agent then sends no more of the app's presence, so nothing else would).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.contracts import events as ev
from agent.contracts.bus import CloudEvent, Op
from kiosk.content import text_in
from kiosk.errors import KioskError
from kiosk.nearby import NearbyApps
from kiosk.safe_text import plain

RECHECK_S: Final = 5.0  # while an app is at the kiosk, its offer is asked again this often
Request = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Shown = tuple[str, dict[str, Any]]  # (app, offer)


class PersonalOffer:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.nearby = NearbyApps(clock)
        self.shown: Shown | None = None
        self.asked = float("-inf")
        self.recorded: Shown | None = None  # the shown offer whose view was recorded

    def observe(self, event: CloudEvent) -> bool:
        """A presence event; True when the offer must be asked again."""
        return self.nearby.observe(event)

    def due(self) -> bool:
        """Time to ask again: an app is near and the last answer is RECHECK_S old, or the
        apps near changed as one went stale."""
        return self.nearby.forget_stale() or (
            bool(self.nearby.zones) and self.clock() - self.asked >= RECHECK_S)

    async def ask(self, request: Request) -> bool:
        """Ask the agent for the offer of the one app at the kiosk; True if what is shown
        changed."""
        self.asked = self.clock()
        app = self.nearby.one_at_kiosk()
        offer: Any = None
        if app is not None:
            try:
                offer = (await request({"op": Op.PERSONAL_OFFER, "id": app}))["offer"]
            except (KioskError, KeyError):
                offer = None  # the agent away: no offer rather than a stale one
        shown = (app, offer) if app is not None and isinstance(offer, dict) else None
        if shown == self.shown:
            return False
        self.shown = shown
        if shown is None:
            self.recorded = None  # gone: shown again later, it counts again
        return True

    def text(self, language: str) -> str:
        """The offer in the shopper's language, "" for none."""
        texts = self.shown[1].get("text") if self.shown is not None else None
        return plain(text_in(texts, language)) if isinstance(texts, dict) else ""

    def view(self, language: str, content_version: int) -> ev.KioskView | None:
        """The personalised view to record now that the home screen is in front of the
        shopper; None when there is none or it was recorded already."""
        shown = self.shown
        if shown is None or shown == self.recorded:
            return None
        self.recorded = shown
        return ev.KioskView(
            page=str(shown[1].get("offer", "")), campaign=shown[1].get("campaign") or None,
            medium="beacon", language=language, content_version=content_version,
            personalised=True)
