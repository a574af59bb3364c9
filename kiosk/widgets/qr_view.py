"""A QR code drawn with block characters, dark on light, for a phone to read off the screen.

Half blocks (one column, two module rows per cell) keep the modules square in a terminal's
cell grid and in the browser's xterm.js. The drawing is the first that fits the space the
layout gives: the standard quiet zone of 4 modules; where rows are short (the 7" screen's
grid, a 24-row terminal), a quiet zone of 2 (every decoder tested reads it, and the code is
drawn on its own light box); where columns are short, quadrant blocks (2 x 2 modules per
cell: half the width, modules twice as tall as wide, which phones and zbar read as an affine
view of a square code). The tests decode every code from screenshots of the served kiosk."""

from __future__ import annotations

from typing import Final

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

# (top dark, bottom dark) -> character drawn in the dark colour on the light background
_CELL = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
# (top left, top right, bottom left, bottom right) dark -> quadrant character
_QUAD = dict(zip(
    [(bool(n & 8), bool(n & 4), bool(n & 2), bool(n & 1)) for n in range(16)],
    " ▗▖▄▝▐▞▟▘▚▌▙▀▜▛█", strict=True))
# exact black on white: theme colours (an off-white "white") cost a phone's camera contrast
_STYLE = Style(color="#000000", bgcolor="#ffffff")
QUIET_MIN: Final = 2  # modules of quiet zone dropped where rows are short (4 -> 2)
TOO_LONG = "(this link is too long for a QR code)"


def qr_matrix(text: str, border: int = 4) -> list[list[bool]]:
    """The code's modules with the quiet zone the standard asks for (4 modules)."""
    import qrcode

    # level L (7 % recovery): a code on a clean screen is not scratched or dirty, and L
    # keeps a tagged hand-off link (~125 bytes) at version 6 — 49 modules with the quiet
    # zone, 25 rows of half blocks, which a 30-row grid still shows whole
    code = qrcode.QRCode(border=border, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(text)
    code.make(fit=True)
    return [list(map(bool, row)) for row in code.get_matrix()]


def qr_lines(matrix: list[list[bool]]) -> list[str]:
    rows = matrix + ([[False] * len(matrix[0])] if len(matrix) % 2 else [])
    return ["".join(_CELL[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1],
                                                                 strict=True))
            for i in range(0, len(rows), 2)]


def qr_quads(matrix: list[list[bool]]) -> list[str]:
    size = len(matrix) + len(matrix) % 2
    rows = [row + [False] * (size - len(row)) for row in matrix] + \
        [[False] * size] * (size - len(matrix))
    return ["".join(_QUAD[(rows[y][x], rows[y][x + 1], rows[y + 1][x], rows[y + 1][x + 1])]
                    for x in range(0, size, 2)) for y in range(0, size, 2)]


class QrView(Widget):
    DEFAULT_CSS = """
    QrView { width: auto; height: auto; }
    """

    def __init__(self, text: str, *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.text = text
        from qrcode.exceptions import DataOverflowError  # qrcode loads when a code is drawn

        try:
            matrix = qr_matrix(text)
        except (ValueError, DataOverflowError):
            # a link from a bundle longer than the largest QR code holds (about 2,300
            # bytes): no code, rather than a kiosk that fails on the hand-off button
            self.drawings = [[TOO_LONG]]
        else:
            narrow = [row[QUIET_MIN:-QUIET_MIN] for row in matrix[QUIET_MIN:-QUIET_MIN]]
            self.drawings = [qr_lines(matrix), qr_lines(narrow), qr_quads(matrix)]
            if len(narrow) % 2:
                # the last half-block row of an odd count is half quiet zone: one module
                # less below the code saves the row a 24-row terminal lacks (a tagged
                # link with its hand-off token is a version 7 code, 45 modules)
                self.drawings.append(qr_lines(
                    [row[QUIET_MIN:-QUIET_MIN] for row in matrix[QUIET_MIN:-QUIET_MIN - 1]]))
        self.lines = self.drawings[0]  # what is drawn: the layout's space decides

    def get_content_width(self, container: Size, viewport: Size) -> int:
        fitting = [d for d in self.drawings
                   if len(d) <= container.height and len(d[0]) <= container.width]
        # nothing fits: the lowest drawing, the layout's tests show what is cut
        self.lines = fitting[0] if fitting else min(self.drawings, key=len)
        return len(self.lines[0])

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines)

    def render_line(self, y: int) -> Strip:
        if y >= len(self.lines):
            return Strip.blank(self.size.width)
        return Strip([Segment(self.lines[y], _STYLE)])
