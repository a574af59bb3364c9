"""Text from outside the kiosk, made safe to show: order and first names, content bundle
texts, status lines, tap and scan payloads, whatever the agent answers.

Every such string goes through one of these helpers before it reaches a widget:
- it is never parsed as Textual markup (`[/]` would crash a render, `[@click=app.quit]`
  would act): widgets get it with `markup=False` or as a `rich.text.Text`, which is not parsed;
- control characters go (an escape sequence in a name would reach the terminal or xterm.js,
  a bidi override would reorder what staff read), lone UTF-16 surrogates become U+FFFD
  (they cannot be written to the screen at all);
- it is bounded in length, so a 1 MB name costs a column, not the layout.
"""

from __future__ import annotations

import re
from typing import Final

from rich.text import Text

NAME_MAX: Final = 40  # a first name, an order id: one column of the queue, one line of text
LINE_MAX: Final = 300  # a status line, a message to staff, a value put into a sentence
TEXT_MAX: Final = 2000  # a content page's text: a screenful at most, even at 1920x1080
ELLIPSIS: Final = "…"

# C0 and C1 controls (line breaks handled apart), DEL, the bidi embeddings, overrides and
# isolates (they reorder text around them), lone surrogates; soft hyphens too (a catalog's
# "Kaffee\u00adbohnen"): a terminal grid breaks no word there, and xterm.js and a terminal
# disagree on whether it takes a cell
_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad"
                   "\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_TAB = re.compile("\t")


def _bounded(value: object, limit: int) -> tuple[str, bool]:
    text = "" if value is None else value if isinstance(value, str) else str(value)
    # cut before cleaning: cleaning only shortens, and a 1 MB string costs no more than `limit`
    return (text[:limit], True) if len(text) > limit else (text, False)


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", _DROP.sub("", _TAB.sub(" ", text)))


def plain(value: object, limit: int = LINE_MAX) -> str:
    """One line of outside text, literal: controls gone, line breaks become spaces, at most
    `limit` characters (the last one an ellipsis when cut). None becomes ""."""
    text, cut = _bounded(value, limit)
    text = _clean(_BREAK.sub(" ", text))
    return text[:limit - 1] + ELLIPSIS if cut else text


def para(value: object, limit: int = TEXT_MAX) -> str:
    """Outside text that may span lines (a page's text): like `plain`, line breaks kept."""
    text, cut = _bounded(value, limit)
    text = _clean(_BREAK.sub("\n", text))
    return text[:limit - 1] + ELLIPSIS if cut else text


def cell(value: object, limit: int = NAME_MAX) -> Text:
    """A table cell from outside: a Text, which a DataTable shows as it is (a str cell is
    parsed as markup there)."""
    return Text(plain(value, limit), no_wrap=True, overflow="ellipsis")
