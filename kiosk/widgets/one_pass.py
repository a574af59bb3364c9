"""Widgets whose size follows what they show, laid out in one pass.

After each layout Textual gives every widget its new size, and a widget whose scrollable
("virtual") size changed asks for a second layout of the whole screen: `virtual_size` is a
reactive that refreshes with layout=True. For a text, a picture or the box scrolling a text,
the layout that measured them has already placed everything by that size, so the second pass
repeats the first. On the content card a tap changes the text's length and the picture
(shown or not) every time: the second pass doubled the card's layout and paint work per tap
(bench-kiosk at 97x27: 590 layouts for 300 taps, 305 with these; the kiosk's CPU per tap
~25 % less). A scroll bar that comes or goes still lays the screen out again (Textual's own
reactive for it).

Textual sets the size this way itself when it only scrolled (`layout=False`); this uses that
path for every layout. `_size_updated` is Textual's (8.x) and private:
tests/unit/kiosk/test_one_pass.py fails when a page change lays the card out twice.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Static


class OnePass(Widget):
    """A widget whose new size needs no second layout. Mixed in after the widget's class:
    Textual takes a widget's default CSS along its first bases."""

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)


class OnePassStatic(Static, OnePass):
    """A Static whose text changes length in place (the content card's text)."""


class OnePassScroll(VerticalScroll, OnePass):
    """A scrolling box whose content changes length in place."""
