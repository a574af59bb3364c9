"""Product images from the bundle on the content card: drawn as half-block pixels in the
picture's colours, only from bytes that match the bundle's hashes; a wrong, hostile or huge
file refuses the bundle whole, with its place named."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image

from kiosk.app import SAMPLE_CONTENT
from kiosk.images import HASHES
from kiosk.widgets.image_view import ImageView
from tests.snapshots.kiosk_screens import kiosk, problems


def _bundle(folder: Path, png: bytes, hashes: dict[str, str] | None) -> None:
    shutil.copytree(SAMPLE_CONTENT, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = 2
    manifest["pages"][0]["image"] = "img/coffee.png"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "img").mkdir(exist_ok=True)
    (folder / "img" / "coffee.png").write_bytes(png)
    if hashes is not None:  # the sample's logo comes along, as its own file of the bundle
        logo = (folder / "img" / "logo.png").read_bytes()
        hashes = {"img/logo.png": hashlib.sha256(logo).hexdigest(), **hashes}
        (folder / HASHES).write_text(json.dumps(hashes))


def _red_and_blue(tmp_path: Path) -> bytes:
    img = Image.new("RGB", (200, 100), (220, 20, 20))
    img.paste((20, 40, 220), (100, 0, 200, 100))  # right half blue
    path = tmp_path / "pic.png"
    img.save(path)
    return path.read_bytes()


def test_a_pages_picture_is_drawn_in_its_colours(tmp_path: Path) -> None:
    png = _red_and_blue(tmp_path)
    folder = tmp_path / "content"
    _bundle(folder, png, {"img/coffee.png": hashlib.sha256(png).hexdigest()})

    async def run() -> None:
        app = kiosk("en", content_dir=str(folder))
        async with app.run_test(size=(114, 26)) as pilot:
            assert app.content_problem == ""
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            view = app.screen.query_one(ImageView)
            assert view.region.width >= 20 and problems(app) == []
            row = list(view.render_line(view.region.height // 2))
            left, right = row[0].style, row[-1].style
            assert left is not None and right is not None
            assert left.color is not None and left.color.triplet is not None
            assert right.color is not None and right.color.triplet is not None
            r, g, b = left.color.triplet
            assert r > 180 and g < 60 and b < 60  # red on the left
            r, g, b = right.color.triplet
            assert b > 180 and r < 60  # blue on the right
            await pilot.click("#handoff")  # the code takes the picture's place
            await pilot.pause()
            assert not app.screen.query_one("#image-box").display
    asyncio.run(run())


def test_bytes_that_do_not_match_the_hash_refuse_the_bundle(tmp_path: Path) -> None:
    png = _red_and_blue(tmp_path)
    folder = tmp_path / "content"
    _bundle(folder, png, {"img/coffee.png": hashlib.sha256(b"other bytes").hexdigest()})

    async def run() -> None:
        app = kiosk("en", content_dir=str(folder))
        async with app.run_test(size=(100, 26)) as pilot:
            await pilot.pause()
            assert "pages[0].image: img/coffee.png its bytes do not match the bundle's hash" \
                in app.content_problem
            # the built-in sample stays, with its own picture, not the refused one
            assert app.bundle.version == 1
            assert app.images["autumn-coffee"].size == (160, 160)
    asyncio.run(run())


def test_hostile_files_refuse_the_bundle_by_place(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (5000, 5000)).save(bomb)  # a few KiB declaring 25 million pixels
    gif = tmp_path / "pic.gif"
    Image.new("RGB", (40, 40), (200, 0, 0)).save(gif)
    whole = _red_and_blue(tmp_path)
    cases = {b"not a picture at all": "is not a picture PIL can read",
             bomb.read_bytes(): "is more than 16,000,000 pixels",
             gif.read_bytes(): "must be a PNG or JPEG picture",
             whole[:len(whole) // 2]: "is not a picture PIL can read",  # cut short
             b"\x00" * (4 * 1024 * 1024 + 1): "larger than 4 MiB"}
    for i, (data, said) in enumerate(cases.items()):
        folder = tmp_path / f"content{i}"
        _bundle(folder, data, None)

        async def run() -> None:
            app = kiosk("en", content_dir=str(folder))  # noqa: B023 — awaited in the loop
            async with app.run_test(size=(100, 26)):
                assert said in app.content_problem, app.content_problem  # noqa: B023
                assert app.bundle.version == 1
        asyncio.run(run())


def test_a_bad_logo_refuses_the_bundle_by_place_and_the_kiosk_keeps_running(
        tmp_path: Path) -> None:
    folder = tmp_path / "content"
    _bundle(folder, _red_and_blue(tmp_path), None)
    (folder / "img" / "logo.png").write_bytes(b"<svg onload=alert(1)>")

    async def run() -> None:
        app = kiosk("en", content_dir=str(folder))
        async with app.run_test(size=(100, 26)) as pilot:
            # one line, with the place, for staff and in the kiosk's start event
            assert "theme.logo: img/logo.png is not a picture PIL can read" in \
                app.content_problem and "\n" not in app.content_problem
            assert app.bundle.version == 1  # the built-in sample stays, with its own logo
            await pilot.click("#go-browse")
            await pilot.pause()
            assert app.screen.query_one("#card-picture", ImageView).picture is not None
    asyncio.run(run())
