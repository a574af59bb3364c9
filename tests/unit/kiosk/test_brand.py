"""The bundle's theme: "#RRGGBB" colours and dark, every other value refused by its place."""

from __future__ import annotations

from kiosk.brand import BrandTheme, parse_theme


def test_colours_become_a_theme() -> None:
    theme, problems = parse_theme({"primary": "#0B5FFF", "accent": "#ffb000", "dark": False})
    assert problems == [] and theme == BrandTheme(primary="#0b5fff", accent="#ffb000",
                                                  dark=False)
    assert theme.textual().primary == "#0b5fff"


def test_a_logo_is_a_file_of_the_bundle() -> None:
    theme, problems = parse_theme({"logo": "img/logo.png"})
    assert problems == [] and theme is not None and theme.logo == "img/logo.png"


def test_no_theme_is_the_kiosks_own_look() -> None:
    assert parse_theme(None) == (None, [])


def test_anything_but_a_hex_colour_is_refused_by_its_place() -> None:
    for value in ("blue", "rgb(1,2,3)", "#fff", "#12345g", "[b]red[/b]", 7, "#0b5fff\n"):
        theme, problems = parse_theme({"primary": value})
        assert theme is None and problems == ['theme.primary: must be a colour like "#0b5fff"']
    assert parse_theme({"font": "x"})[1][0].startswith("theme.font: unknown key")
    for logo in ("../logo.png", "/etc/passwd", "manifest.json", 7, "a b.png"):
        assert parse_theme({"logo": logo})[1] == [
            "theme.logo: must be a file name in the bundle, like img/logo.png"]
    assert parse_theme({"dark": "yes"})[1] == ["theme.dark: must be true or false"]
    assert parse_theme(["#0b5fff"])[1][0].startswith("theme: must be an object")
