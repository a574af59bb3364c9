"""Pictures as real pixels on the served page: what the kiosk tells its page (each picture
once, then where pictures show) and what the server passes on (only our shapes)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

from PIL import Image

from kiosk.content import LOGO
from kiosk.web_pictures import MAX_PLACES, PICTURE, PLACES, PictureOverlay, page_message
from kiosk.widgets.image_view import ImageView
from tests.snapshots.kiosk_screens import kiosk

KEY = "ab" * 32


def test_the_server_passes_on_our_shapes_only() -> None:
    picture = {"type": PICTURE, "key": KEY, "mime": "image/png",
               "data": base64.b64encode(b"\x89PNG...").decode()}
    places = {"type": PLACES, "cols": 100, "rows": 30, "places": [[KEY, 1, 2, 30, 12]]}
    assert json.loads(page_message(picture) or "") == [PICTURE, {
        k: v for k, v in picture.items() if k != "type"}]
    assert json.loads(page_message(places) or "") == [PLACES, {
        "cols": 100, "rows": 30, "places": [[KEY, 1, 2, 30, 12]]}]
    hostile: list[Any] = [
        None, [], "o2o_places", {"type": "open_url", "url": "https://evil.example"},
        {**picture, "key": "../../etc"}, {**picture, "key": KEY.upper()},
        {**picture, "mime": "text/html"}, {**picture, "mime": "image/svg+xml"},
        {**picture, "data": "<script>"}, {**picture, "data": "A" * (4 * 1024 * 1024)},
        {**picture, "data": 7},
        {**places, "cols": -1}, {**places, "rows": 10**9}, {**places, "cols": True},
        {**places, "places": [[KEY, 1, 2, 30]]}, {**places, "places": [[KEY, 1, 2, 30, 1.5]]},
        {**places, "places": [["x", 1, 2, 3, 4]]}, {**places, "places": "all"},
        {**places, "places": [[KEY, 0, 0, 1, 1]] * (MAX_PLACES + 1)},
    ]
    for meta in hostile:
        assert page_message(meta) is None, meta


def _places(sent: list[dict[str, object]]) -> list[Any]:
    return [m["places"] for m in sent if m["type"] == PLACES]


def test_the_page_learns_each_picture_once_and_where_it_shows() -> None:
    async def run() -> None:
        app = kiosk("en")
        sent: list[dict[str, object]] = []
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            app.pictures = PictureOverlay(sent.append)
            app.screen.refresh()
            await pilot.pause()
            # attract: the logo (in the slide on a short grid) and the slide's picture
            logo = app.images[LOGO]
            assert {m["key"] for m in sent if m["type"] == PICTURE} == {
                logo.key, app.images["autumn-coffee"].key}
            shown = {p[0] for p in _places(sent)[-1]}
            assert logo.key in shown and app.images["autumn-coffee"].key in shown
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            view = app.screen.query_one("#card-picture", ImageView)
            r = view.region
            assert _places(sent)[-1] == [[app.images["autumn-coffee"].key, r.x, r.y,
                                          r.width, r.height]]
            # the sent copy is the picture, made by the kiosk (PNG or JPEG), not the file
            first = next(m for m in sent if m.get("key") == app.images["autumn-coffee"].key)
            web = Image.open(io.BytesIO(base64.b64decode(str(first["data"]))))
            assert web.size == (160, 160) and first["mime"] == "image/jpeg"
            app.home()
            await pilot.pause()
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            keys = [m["key"] for m in sent if m["type"] == PICTURE]
            assert len(keys) == len(set(keys)) == 2  # each picture once per session
            await pilot.click("#handoff")  # the code takes the picture's place
            await pilot.pause()
            assert _places(sent)[-1] == []
            await pilot.click("#back")
            await pilot.pause()
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            # a note over the picture: the page leaves it to the cells under the note
            app.notify("A long note " * 20, timeout=30)
            deadline = asyncio.get_running_loop().time() + 5
            while _places(sent)[-1] and asyncio.get_running_loop().time() < deadline:
                await pilot.pause(0.05)
            assert _places(sent)[-1] == []
    asyncio.run(run())
