"""A bundle's theme on the kiosk: its colours on the buttons; a bundle with a bad theme is
refused whole (the last good one and its look stay) and staff see why."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from textual.color import Color
from textual.widgets import Button

from kiosk.app import SAMPLE_CONTENT
from tests.snapshots.kiosk_screens import kiosk


def _close(colour: Color, hex_colour: str) -> bool:
    """The same colour, give or take Textual's rounding through its colour system."""
    want = Color.parse(hex_colour)
    return all(abs(a - b) <= 2 for a, b in zip(colour.rgb, want.rgb, strict=True))


def _bundle(folder: Path, theme: object, version: int) -> None:
    if not folder.exists():
        shutil.copytree(SAMPLE_CONTENT, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version=version, theme=theme)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_bundles_colours_reach_the_screen(tmp_path: Path) -> None:
    folder = tmp_path / "content"
    _bundle(folder, {"primary": "#c8102e", "background": "#101820"}, 2)

    async def run() -> None:
        app = kiosk("en", content_dir=str(folder))
        async with app.run_test(size=(100, 26)) as pilot:
            await pilot.pause()
            pickup = app.screen.query_one("#go-pickup", Button)
            assert _close(pickup.styles.background, "#c8102e")
            # a new bundle with another colour: applied on reload
            _bundle(folder, {"primary": "#00843d"}, 3)
            assert app.reload_content() == "content version 3 loaded"
            await pilot.pause()
            assert _close(pickup.styles.background, "#00843d")
            # a bad theme: the bundle is refused whole, the look and content stay
            _bundle(folder, {"primary": "red"}, 4)
            problem = app.reload_content()
            assert 'theme.primary: must be a colour like "#0b5fff"' in problem
            await pilot.pause()
            assert app.bundle.version == 3
            assert _close(pickup.styles.background, "#00843d")
    asyncio.run(run())


def test_without_a_theme_the_kiosk_keeps_its_own_look(tmp_path: Path) -> None:
    folder = tmp_path / "content"
    _bundle(folder, None, 2)

    async def run() -> None:
        app = kiosk("en", content_dir=str(folder))
        async with app.run_test(size=(100, 26)) as pilot:
            await pilot.pause()
            assert app.brand is None and app.theme == "textual-dark"
    asyncio.run(run())
