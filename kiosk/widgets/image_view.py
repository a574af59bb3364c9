"""A picture drawn with half blocks: each cell is "▀" in the upper pixel's colour on the lower
pixel's, so a cell holds two square pixels (in a terminal and in the browser's xterm.js). The
picture is scaled to the space the layout gives, keeping its proportions.

One view lives on the content card and is given each page's picture in turn (`show`); the
drawn rows are kept per picture and size (a few), so a shopper tapping between products costs
no drawing and no memory after the first time — a new view per card, each drawing ~1,000
styled cells, took the kiosk from 40 to 240 MiB and its p99 from 23 to 780 ms in bench-kiosk.

Served to a browser, the page draws the picture's real pixels over these cells
(kiosk/web_pictures.py): the half blocks are what a plain terminal shows, and what shows
for the moment the page takes to place the picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip

from kiosk.widgets.one_pass import OnePass

if TYPE_CHECKING:
    from PIL.Image import Image

    from kiosk.images import Picture

KEPT_DRAWINGS: Final = 8  # pictures x sizes kept drawn: a bundle's few products, one size


class ImageView(OnePass):  # its size changes with each picture: one layout pass
    DEFAULT_CSS = """
    ImageView { width: auto; height: auto; }
    """

    def __init__(self, picture: Picture | None = None, *, max_rows: int | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.picture = picture
        self.max_rows = max_rows  # a logo heads a screen: it must not take it
        self.cells = Size(0, 0)
        # (id of the picture, cols, rows) -> (the picture, kept alive so its id stays its
        # own, and its rows)
        self._drawn: dict[tuple[int, int, int], tuple[Image, list[Strip]]] = {}

    @property
    def image(self) -> Image | None:
        return self.picture.image if self.picture is not None else None

    def show(self, picture: Picture | None) -> None:
        if picture is not self.picture:
            self.picture = picture
            self.refresh(layout=True)

    def _fit(self, container: Size) -> Size:
        if self.image is None:
            return Size(0, 0)
        w, h = self.image.size
        rows = container.height if self.max_rows is None else min(container.height,
                                                                   self.max_rows)
        scale = min(container.width / w, rows * 2 / h)
        return Size(max(1, int(w * scale)), max(1, int(h * scale) // 2))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        self.cells = self._fit(container)
        return self.cells.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.cells.height

    def _rows(self) -> list[Strip]:
        if self.image is None:
            return []
        key = (id(self.image), *self.cells)
        kept = self._drawn.get(key)
        if kept is not None:
            return kept[1]
        from PIL import Image as PILImage

        cols, rows = self.cells
        px = self.image.resize((cols, rows * 2), PILImage.Resampling.BILINEAR).load()
        assert px is not None
        drawn = []
        styles: dict[tuple[object, object], Style] = {}
        for y in range(rows):
            cells = []
            for x in range(cols):
                pair = (px[x, 2 * y], px[x, 2 * y + 1])
                style = styles.get(pair)
                if style is None:
                    top, bottom = pair
                    style = styles[pair] = Style(
                        color=Color.from_rgb(*top),  # type: ignore[misc]
                        bgcolor=Color.from_rgb(*bottom))  # type: ignore[misc]
                cells.append(Segment("▀", style))
            # runs of one colour pair as one segment: a product shot has large even areas,
            # and every segment costs the compositor on each paint
            drawn.append(Strip(cells, cols).simplify())
        if len(self._drawn) >= KEPT_DRAWINGS:
            self._drawn.pop(next(iter(self._drawn)))
        self._drawn[key] = (self.image, drawn)
        return drawn

    def render_line(self, y: int) -> Strip:
        rows = self._rows()
        return rows[y] if y < len(rows) else Strip.blank(self.size.width)
