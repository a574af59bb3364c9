"""What every shopper screen shares: the agent notice at the top, the screen's own body,
and the language and call-staff bar at the foot."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen

from kiosk.widgets.agent_banner import AgentBanner
from kiosk.widgets.shopper_bar import ShopperBar

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class ShopperScreen(Screen[None]):
    name_for_events = "screen"

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def t(self, key: str, **values: object) -> str:
        return self.kiosk.translator(key, **values)

    def compose(self) -> ComposeResult:
        k = self.kiosk
        yield AgentBanner(self.t("agent.down"), not k.agent_up)
        with Vertical(id="body"):
            yield from self.body()
        yield ShopperBar(k.language_choices(), k.translator.language, self.t("staff.call"))

    def body(self) -> ComposeResult:
        raise NotImplementedError
