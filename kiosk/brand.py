"""The retailer's look from the content bundle: `"theme"` in manifest.json.

    "theme": {"primary": "#0b5fff", "accent": "#ffb000", "background": "#101820",
              "surface": "#1b2631", "dark": true}

Every key is optional; colours are "#RRGGBB" (anything else — names, rgb(), CSS with markup
— is refused with its place in the manifest, and the bundle with it, like any other problem
of the bundle: the kiosk keeps the last good one). The colours become a Textual theme, so
buttons, headings and the attract card take the brand's colours; QR codes stay black on white
whatever the theme (a phone's camera needs the contrast).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from textual.theme import Theme

COLOURS: Final = ("primary", "accent", "background", "surface")
_HEX: Final = re.compile(r"#[0-9a-fA-F]{6}", re.ASCII)
THEME_NAME: Final = "o2o-bundle"  # the registered Textual theme a bundle's colours make
DEFAULT_THEME: Final = "textual-dark"  # no theme in the bundle: the kiosk's own look


@dataclass(frozen=True)
class BrandTheme:
    primary: str | None = None
    accent: str | None = None
    background: str | None = None
    surface: str | None = None
    dark: bool = True

    def textual(self) -> Theme:
        """As a Textual theme; colours the bundle leaves out come from the kiosk's own."""
        # warning, error and success keep the kiosk's own: "Call staff" must stand out
        # from a brand's primary colour, and a problem must never look like a success
        return Theme(name=THEME_NAME, primary=self.primary or "#0178D4",
                     accent=self.accent or "#ffa62b", background=self.background,
                     surface=self.surface, warning="#ffa62b", error="#ba3c5b",
                     success="#4EBF71", dark=self.dark)


def parse_theme(raw: Any) -> tuple[BrandTheme | None, list[str]]:
    """(the theme or None when the bundle has none, its problems as "theme.key: what")."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, ['theme: must be an object like {"primary": "#0b5fff"}']
    problems = [f"theme.{key}: unknown key; use {', '.join(COLOURS)} or dark"
                for key in raw if key not in (*COLOURS, "dark")]
    values: dict[str, Any] = {}
    for key in COLOURS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            problems.append(f'theme.{key}: must be a colour like "#0b5fff"')
            continue
        values[key] = value.lower()
    dark = raw.get("dark", True)
    if not isinstance(dark, bool):
        problems.append("theme.dark: must be true or false")
        dark = True
    return (None if problems else BrandTheme(**values, dark=dark)), problems
