"""The kiosk's screens as a shopper (or staff) reaches them, and the layout check every size
must pass: shared by the terminal snapshot/Pilot tests and the browser matrix.

`problems(app)` lists what a user would see wrong on the screen now shown: a control (button,
key, table, QR code) not wholly on screen or hidden under another one, a label wider than its
button, a QR code squashed or cut. An empty list is a usable screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Button, DataTable, Static

from kiosk.app import KioskApp
from kiosk.screens.product import ProductScreen
from kiosk.settings import DeviceSection, KioskSection, KioskSettings
from kiosk.widgets.qr_view import QrView

# the sizes stores use, as cell grids: terminals, and what the served page makes of screens
TERMINAL_SIZES = [(80, 24), (120, 40), (200, 60)]


def kiosk(language: str = "en", **kiosk_options: Any) -> KioskApp:
    app = KioskApp(KioskSettings(device=DeviceSection(store="store-1", id="kiosk-1"),
                                 kiosk=KioskSection(language=language, **kiosk_options)),
                   connect=False)
    app.agent_up = True  # the "agent down" notice is shown by the screens that test it
    return app


async def _attract(pilot: Any) -> None:
    await pilot.pause()


async def _content(pilot: Any) -> None:
    pilot.app.open_page("autumn-coffee", "nfc")
    await pilot.pause()
    await pilot.click("#handoff")
    await pilot.pause()


async def _checkin(pilot: Any) -> None:
    await pilot.click("#go-pickup")
    await pilot.pause()
    for key in "K7Q":
        await pilot.click(f"#key-{key}")
    await pilot.pause()


async def _appointment(pilot: Any) -> None:
    await pilot.click("#go-appointment")
    await pilot.pause()


async def _privacy(pilot: Any) -> None:
    await pilot.click("#go-privacy")
    await pilot.pause()


async def _result(pilot: Any) -> None:
    pilot.app.show_result("pickup.ok", {"name": "Anna", "minutes": 3})
    await pilot.pause()


async def _survey(pilot: Any) -> None:
    pilot.app.go("survey")
    await pilot.pause()


async def _staff_pin(pilot: Any) -> None:
    pilot.app.go("staff")
    await pilot.pause()


async def _staff(pilot: Any) -> None:
    pilot.app.enter_staff_mode()
    await pilot.pause()
    await pilot.pause()


# the product card at its fullest: a long name, stock only in other stores, the agent
# offline with prices hours old (the catalog-lookup answer, as the agent gives it)
PRODUCT_REPLY: Final = {
    "ok": True, "found": True, "online": False, "age_s": 3 * 3600.0, "priced_at": 0.0,
    "products": 2,
    "product": {"sku": "LAMP-7", "gtin": "09506000134352", "price": 4500, "currency": "EUR",
                "name": {"en": "Desk lamp with adjustable arm, warm white LED, oak base",
                         "de": "Schreibtischlampe mit verstellbarem Arm, warmweiße LED, "
                               "Eichenfuß",
                         "es": "Lámpara de escritorio con brazo ajustable, LED blanco "
                               "cálido, base de roble"},
                "stock": 0, "nearby": [{"store": "berlin-02", "name": "Berlin Mitte",
                                        "stock": 5},
                                       {"store": "berlin-05", "name": "Potsdamer Platz",
                                        "stock": 2}]}}


async def _product(pilot: Any) -> None:
    screen = ProductScreen("09506000134352", dict(PRODUCT_REPLY))
    pilot.app.push_screen(screen)  # what the app does with the agent's answer to a scan
    pilot.app.mark_shown(screen.outcome)
    await pilot.pause()


SCREENS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "attract": _attract, "content": _content, "checkin": _checkin,
    "appointment": _appointment, "privacy": _privacy, "result": _result,
    "survey": _survey, "product": _product, "staff-pin": _staff_pin, "staff": _staff}


def controls(app: KioskApp) -> list[Widget]:
    """What a user must see whole to use the screen: buttons, QR codes, tables."""
    found: list[Widget] = []
    for widget in app.screen.query("Button, QrView, DataTable"):
        if widget.display and widget.visible and all(a.display for a in widget.ancestors
                                                     if isinstance(a, Widget)):
            found.append(widget)
    return found


def _name(widget: Widget) -> str:
    return f"#{widget.id}" if widget.id else type(widget).__name__


def problems(app: KioskApp) -> list[str]:
    screen_region = Region(0, 0, *app.size)
    out: list[str] = []
    shown = controls(app)
    placed = app.screen._compositor.visible_widgets  # what is drawn, and where
    for widget in shown:
        region = widget.region
        name = _name(widget)
        if region.area == 0 or widget not in placed:
            out.append(f"{name} is not drawn at all")
            continue
        if not screen_region.contains_region(region):
            out.append(f"{name} {region} is out of the {app.size.width}x"
                       f"{app.size.height} screen")
            continue
        # the part not clipped away by its containers (a scrolled or too small box)
        visible = region.intersection(placed[widget][1])
        if visible != region:
            out.append(f"{name} {region} is cut to {visible}")
        if isinstance(widget, Button):
            label = str(widget.label)
            if len(label) > widget.content_size.width:
                out.append(f"{name}: label {label!r} is wider than its button")
        if isinstance(widget, QrView) and widget.lines and \
                (region.width < len(widget.lines[0]) or region.height < len(widget.lines)):
            out.append(f"{name}: the QR code is squashed or cut ({region.size})")
    for text in app.screen.query(Static):
        if not text.display or not all(a.display for a in text.ancestors
                                       if isinstance(a, Widget)):
            continue
        words = str(text.render()).split()
        longest = max((len(w) for w in words), default=0)
        if words and text.region.width < min(longest, 12):
            # a word broken over lines of a character or two: the garbled staff "Today"
            out.append(f"#{text.id} is {text.region.width} columns wide for "
                       f"{' '.join(words)[:30]!r}")
    for i, a in enumerate(shown):
        for b in shown[i + 1:]:
            if a.region.overlaps(b.region) and a not in b.ancestors and b not in a.ancestors:
                out.append(f"{_name(a)} {a.region} overlaps {_name(b)} {b.region}")
    return out


def qr_views(app: KioskApp) -> list[QrView]:
    return [w for w in controls(app) if isinstance(w, QrView)]


def tables(app: KioskApp) -> list[DataTable[Any]]:
    return [w for w in controls(app) if isinstance(w, DataTable)]
