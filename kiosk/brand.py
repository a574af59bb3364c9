"""The retailer's look from the content bundle: `"theme"` in manifest.json.

    "theme": {"primary": "#0b5fff", "accent": "#ffb000", "background": "#101820",
              "surface": "#1b2631", "dark": true, "logo": "img/logo.png"}

Every key is optional; colours are "#RRGGBB" (anything else — names, rgb(), CSS with markup
— is refused with its place in the manifest, and the bundle with it, like any other problem
of the bundle: the kiosk keeps the last good one). The colours become a Textual theme, so
buttons, headings and the attract card take the brand's colours; QR codes stay black on white
whatever the theme (a phone's camera needs the contrast). The logo, a PNG or JPEG of the
bundle, heads the attract screen; it is checked like a page's picture (kiosk/images.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from textual.theme import Theme

from agent.contracts.content_manifest import check_theme

THEME_NAME: Final = "o2o-bundle"  # the registered Textual theme a bundle's colours make
DEFAULT_THEME: Final = "textual-dark"  # no theme in the bundle: the kiosk's own look


@dataclass(frozen=True)
class BrandTheme:
    primary: str | None = None
    accent: str | None = None
    background: str | None = None
    surface: str | None = None
    dark: bool = True
    logo: str | None = None  # a file of the bundle, loaded by kiosk/content.py

    @property
    def backdrop(self) -> str:
        """What a transparent logo is drawn on in a terminal: the screens' surface."""
        return self.surface or self.background or ("#1e1e1e" if self.dark else "#efefef")

    def textual(self) -> Theme:
        """As a Textual theme; colours the bundle leaves out come from the kiosk's own."""
        # warning, error and success keep the kiosk's own: "Call staff" must stand out
        # from a brand's primary colour, and a problem must never look like a success
        return Theme(name=THEME_NAME, primary=self.primary or "#0178D4",
                     accent=self.accent or "#ffa62b", background=self.background,
                     surface=self.surface, warning="#ffa62b", error="#ba3c5b",
                     success="#4EBF71", dark=self.dark)


def parse_theme(raw: Any) -> tuple[BrandTheme | None, list[str]]:
    """(the theme or None when the bundle has none, its problems as "theme.key: what");
    the rules are the content contract's, which the agent applies before installing."""
    values, problems = check_theme(raw)
    return (BrandTheme(**values) if values is not None else None), problems
