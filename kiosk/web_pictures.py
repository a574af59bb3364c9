"""Pictures as real pixels on the served page.

A terminal shows a picture as half blocks (kiosk/widgets/image_view.py); the browser's
terminal could show no more. Served, the kiosk also tells the page, over textual-serve's own
channel for the app's side messages ("meta" packets, beside the screen's bytes and in order
with them):

- `o2o_picture` once per picture and session: its bytes, which the kiosk wrote itself from a
  picture it decoded and checked against the bundle's hashes (kiosk/images.py);
- `o2o_places` whenever what shows changes: which picture covers which cells, for every
  picture wholly on the top screen and under nothing else (a note, a dialog).

The page (kiosk/web/app_index.html) draws each picture over its cells and takes it away with
the next places. The server (kiosk/serve.py) passes these on to the page's websocket only in
the shapes checked here; nothing is fetched, from the Pi or elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from kiosk.images import Picture

if TYPE_CHECKING:
    from textual.geometry import Size
    from textual.screen import Screen

PICTURE: Final = "o2o_picture"
PLACES: Final = "o2o_places"
MIMES: Final = frozenset({"image/png", "image/jpeg"})
MAX_PICTURE_BYTES: Final = 2 * 1024 * 1024  # a 720 px re-encoding is ~50-300 KiB
MAX_PLACES: Final = 16  # pictures on one screen: a logo and a few products
MAX_CELLS: Final = 400  # the server's largest terminal side (kiosk/serve.py COLS)
_KEY: Final = re.compile(r"[0-9a-f]{64}")


class PictureOverlay:
    """Follows what the kiosk paints and tells the page where pictures show."""

    def __init__(self, write_meta: Callable[[dict[str, object]], None]) -> None:
        self._write = write_meta
        self._sent: set[str] = set()
        self._last: tuple[Any, ...] = ()

    def frame(self, screen: Screen[Any], size: Size) -> None:
        """After each paint of the top screen: send the places if they changed."""
        # the compositor's visible widgets, top first (its render order, cached per layout)
        visible = screen._compositor.visible_widgets  # no public view of it
        places: list[tuple[Picture, int, int, int, int]] = []
        above: list[Any] = []  # regions drawn over what comes next
        for widget, (region, clip) in visible.items():
            # an ImageView (kiosk/widgets/image_view.py), known by its picture: the server
            # imports this module for page_message, and Textual would add ~5 MiB to it
            picture = getattr(widget, "picture", None)
            if isinstance(picture, Picture):
                cols, rows = getattr(widget, "cells", (0, 0))
                if not cols or not rows:
                    continue
                drawn = region.intersection(clip)
                # a picture partly scrolled away or under a note keeps its half blocks
                if drawn == region and not any(r.overlaps(region) for r in above):
                    places.append((picture, region.x, region.y, region.width, region.height))
            elif not widget.is_container and widget is not screen:
                above.append(region)
        key = (size.width, size.height, *((id(p[0]), *p[1:]) for p in places))
        if key == self._last:
            return
        self._last = key
        for picture, *_ in places:
            if picture.key not in self._sent:
                self._sent.add(picture.key)
                self._write(
                    {
                        "type": PICTURE,
                        "key": picture.key,
                        "mime": picture.mime,
                        "data": base64.b64encode(picture.web).decode("ascii"),
                    }
                )
        self._write(
            {
                "type": PLACES,
                "cols": size.width,
                "rows": size.height,
                "places": [[p.key, x, y, w, h] for p, x, y, w, h in places],
            }
        )


def _cell(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CELLS


def page_message(meta: Any) -> str | None:
    """A kiosk's meta packet as the message for its page, or None when it is none of ours
    or not in our shape (then it goes nowhere)."""
    if not isinstance(meta, dict):
        return None
    kind = meta.get("type")
    if kind == PICTURE:
        key, mime, data = meta.get("key"), meta.get("mime"), meta.get("data")
        if not (
            isinstance(key, str)
            and _KEY.fullmatch(key)
            and mime in MIMES
            and isinstance(data, str)
            and len(data) <= MAX_PICTURE_BYTES * 4 // 3 + 4
        ):
            return None
        try:
            base64.b64decode(data, validate=True)
        except ValueError:
            return None
        return json.dumps([PICTURE, {"key": key, "mime": mime, "data": data}])
    if kind == PLACES:
        cols, rows, places = meta.get("cols"), meta.get("rows"), meta.get("places")
        if not (
            _cell(cols) and _cell(rows) and isinstance(places, list) and len(places) <= MAX_PLACES
        ):
            return None
        for place in places:
            if not (
                isinstance(place, list)
                and len(place) == 5
                and isinstance(place[0], str)
                and _KEY.fullmatch(place[0])
                and all(_cell(v) for v in place[1:])
            ):
                return None
        return json.dumps([PLACES, {"cols": cols, "rows": rows, "places": places}])
    return None
