"""What every shopper screen shares: the agent notice at the top, the screen's own body,
and the language and call-staff bar at the foot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.screen import Screen

from kiosk.widgets.agent_banner import AgentBanner
from kiosk.widgets.shopper_bar import ShopperBar

if TYPE_CHECKING:
    from kiosk.app import KioskApp


# Layouts adapt to the cell grid, not to one size: a served page makes 95x26 of a 7" screen
# and 80x65 of a portrait one, a terminal may be 80x24 or 200x60. The screen's classes say
# which kind of grid it is; theme.tcss arranges each screen for each kind.
WIDE_COLS: Final = 120  # room for the keypad (10 keys of 7+ columns) and the privacy QR beside
TALL_ROWS: Final = 30  # below this the screens drop their spacing (margins, padding)


def fit_classes(screen: Screen[Any], size: Size) -> None:
    """-portrait: taller than wide on the glass (a cell is about twice as high as wide);
    -short: under TALL_ROWS rows; -wide: WIDE_COLS columns or more."""
    screen.set_class(size.width < 2 * size.height, "-portrait")
    screen.set_class(size.height < TALL_ROWS, "-short")
    screen.set_class(size.width >= WIDE_COLS, "-wide")


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

    def on_resize(self, event: events.Resize) -> None:
        fit_classes(self, event.size)

    def on_screen_resume(self) -> None:
        fit_classes(self, self.app.size)
