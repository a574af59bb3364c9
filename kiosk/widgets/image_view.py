"""A picture drawn with half blocks: each cell is "▀" in the upper pixel's colour on the lower
pixel's, so a cell holds two square pixels (in a terminal and in the browser's xterm.js). The
picture is scaled to the space the layout gives, keeping its proportions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:
    from PIL.Image import Image


class ImageView(Widget):
    DEFAULT_CSS = """
    ImageView { width: auto; height: auto; }
    """

    def __init__(self, image: Image, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.image = image
        self.cells = Size(1, 1)
        self._rows: list[Strip] = []

    def _fit(self, container: Size) -> Size:
        w, h = self.image.size
        scale = min(container.width / w, container.height * 2 / h)
        return Size(max(1, int(w * scale)), max(1, int(h * scale) // 2))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        self.cells = self._fit(container)
        return self.cells.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.cells.height

    def _draw(self) -> None:
        from PIL import Image as PILImage

        cols, rows = self.cells
        small = self.image.resize((cols, rows * 2), PILImage.Resampling.BILINEAR)
        px = small.load()
        assert px is not None
        self._rows = []
        for y in range(rows):
            segments = []
            for x in range(cols):
                top, bottom = px[x, 2 * y], px[x, 2 * y + 1]
                segments.append(Segment("▀", Style(color=f"rgb{tuple(top)}",  # type: ignore[arg-type]
                                                   bgcolor=f"rgb{tuple(bottom)}")))  # type: ignore[arg-type]
            self._rows.append(Strip(segments, cols))

    def render_line(self, y: int) -> Strip:
        if len(self._rows) != self.cells.height or \
                (self._rows and self._rows[0].cell_length != self.cells.width):
            self._draw()
        return self._rows[y] if y < len(self._rows) else Strip.blank(self.size.width)
