"""Lines from a stream with a bound on each: a line longer than the bound is skipped to its
end without ever being held whole, so a command reading stdin costs no more memory for a
20 MB line than for a short one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO


def bounded_lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, str, str]]:
    """(line number, text, problem) of each line; problem is "" or says why the text is
    empty (longer than max_bytes, not UTF-8)."""
    lineno = 0
    while True:
        raw = stream.readline(max_bytes + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while (rest := stream.readline(max_bytes)) and not rest.endswith(b"\n"):
                pass
            yield lineno, "", f"longer than {max_bytes:,} bytes"
            continue
        try:
            yield lineno, raw.decode("utf-8"), ""
        except UnicodeDecodeError:
            yield lineno, "", "not UTF-8 text"
