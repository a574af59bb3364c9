"""One tap: how was the visit? One to five stars (or 0-10 for an NPS question), or no thanks."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from agent.contracts import events as ev
from kiosk.content import text_in
from kiosk.safe_text import plain
from kiosk.screens.base import ShopperScreen

# stars, not emoji faces: terminal and xterm.js fonts draw ★ everywhere, faces often as boxes
STARS = tuple("★" * n for n in range(1, 6))
THANKS_S = 2.0


class SurveyScreen(ShopperScreen):
    name_for_events = "survey"

    def __init__(self, after: str) -> None:
        super().__init__(classes="survey")
        self.after = after  # what the shopper just did, e.g. "pickup.ok"
        self.answered = False

    def body(self) -> ComposeResult:
        survey = self.kiosk.bundle.survey
        question = plain(text_in(survey.question, self.kiosk.translator.language))
        yield Static(question or self.t("survey.question"), id="question", markup=False)
        if self.answered:
            yield Static(self.t("survey.thanks"), id="thanks", markup=False)
            return
        with Horizontal(id="scores"):
            if survey.scale == 5:
                for i, stars in enumerate(STARS, start=1):
                    yield Button(stars, id=f"score-{i}", classes="score")
            else:
                for i in range(11):
                    yield Button(str(i), id=f"score-{i}", classes="score nps")
        yield Button(self.t("survey.skip"), id="skip")

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        if bid == "skip":
            self.kiosk.home()
        elif bid.startswith("score-") and not self.answered:
            self.answered = True
            self.kiosk.record(ev.KIOSK_SURVEY, ev.KioskSurvey(
                score=int(bid.removeprefix("score-")), scale=self.kiosk.bundle.survey.scale,
                after=self.after, content_version=self.kiosk.bundle.version,
                variants=dict(self.kiosk.session.variants)))
            await self.recompose()
            self.set_timer(THANKS_S, self.kiosk.home)
