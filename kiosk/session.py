"""What one shopper's session at the kiosk remembers until it is reset (idle, or staff):
the A/B variant each page showed them, and what they did, so the survey is offered once,
after the right thing.

A page's variant is picked the first time the session opens it (weighted,
agent/contracts/content_variants.py) and kept: a shopper going back and forth between
offers sees the same variant each time, and every view, hand-off, survey and check-in of
the session names it. The random source is injected so tests pick the same variants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from agent.contracts.content_variants import pick
from kiosk.content import Page

SurveyAfter = Literal["browse", "staff-call"]


@dataclass
class ShopperSession:
    rng: random.Random
    variants: dict[str, str] = field(default_factory=dict)  # page id -> variant shown
    viewed: bool = False  # a content page was shown
    checked_in: bool = False  # a check-in was asked for (its result offers the survey)
    called_staff: bool = False
    surveyed: bool = False  # the survey was offered (answered or not)
    # pages viewed and handed off this session: an A/B test compares shoppers, not views
    pages_viewed: set[str] = field(default_factory=set)
    pages_handed_off: set[str] = field(default_factory=set)

    def shown(self, page: Page) -> Page:
        """The page as this session shows it: its variant, picked once (again only when a
        new bundle dropped the one picked)."""
        if not page.variants:
            return page
        name = self.variants.get(page.id)
        if name is None or all(v.name != name for v in page.variants):
            name = self.variants[page.id] = pick(page.variants, self.rng).name
        return page.with_variant(name)

    def first_view(self, page_id: str) -> bool:
        """True the first time this session views the page (the event says so: the KPIs
        count the shoppers each variant was shown to)."""
        first = page_id not in self.pages_viewed
        self.pages_viewed.add(page_id)
        return first

    def first_handoff(self, page_id: str) -> bool:
        first = page_id not in self.pages_handed_off
        self.pages_handed_off.add(page_id)
        return first

    def survey_due(self) -> SurveyAfter | None:
        """At the home reset: the survey after a staff call, else after browsing offers
        without a check-in (a check-in's result offers it itself); once per session."""
        if self.surveyed:
            return None
        if self.called_staff:
            return "staff-call"
        if self.viewed and not self.checked_in:
            return "browse"
        return None

    def started(self) -> bool:
        """A shopper did something: a view, a check-in, a call, a survey (the home screen's
        slides draw variants with nobody there: that alone is no session)."""
        return self.viewed or self.checked_in or self.called_staff or self.surveyed

    def reset(self) -> None:
        """The next shopper: nothing of this session's is kept, the random source goes on."""
        self.variants.clear()
        self.pages_viewed.clear()
        self.pages_handed_off.clear()
        self.viewed = self.checked_in = self.called_staff = self.surveyed = False
