"""A QR code drawn with half-block characters, dark on light, for a phone to read off the
screen: each text row carries two module rows, so the code stays square in a terminal cell
grid and in the browser's xterm.js."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

# (top dark, bottom dark) -> character drawn in the dark colour on the light background
_CELL = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
# exact black on white: theme colours (an off-white "white") cost a phone's camera contrast
_STYLE = Style(color="#000000", bgcolor="#ffffff")
TOO_LONG = "(this link is too long for a QR code)"


def qr_matrix(text: str, border: int = 4) -> list[list[bool]]:
    """The code's modules with the quiet zone the standard asks for (4 modules)."""
    import qrcode

    code = qrcode.QRCode(border=border, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return [list(map(bool, row)) for row in code.get_matrix()]


def qr_lines(matrix: list[list[bool]]) -> list[str]:
    rows = matrix + ([[False] * len(matrix[0])] if len(matrix) % 2 else [])
    return ["".join(_CELL[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1],
                                                                 strict=True))
            for i in range(0, len(rows), 2)]


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
            self.lines = qr_lines(qr_matrix(text))
        except (ValueError, DataOverflowError):
            # a link from a bundle longer than the largest QR code holds (about 2,300
            # bytes): no code, rather than a kiosk that fails on the hand-off button
            self.lines = [TOO_LONG]

    def get_content_width(self, container: object, viewport: object) -> int:
        return len(self.lines[0])

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self.lines)

    def render_line(self, y: int) -> Strip:
        if y >= len(self.lines):
            return Strip.blank(self.size.width)
        return Strip([Segment(self.lines[y], _STYLE)])
