"""Events read straight from the pages of a damaged outbox file: the ones its b-tree no longer
reaches (a damaged interior page hides every leaf below it — with 1 KiB pages one covers a few
hundred events).

Only rows whose number the file's indexes still list are taken: a deleted row (sent, dropped)
stays on free pages until they are reused, and must not come back. A row is never updated, so
every copy of a number found (a page split leaves the old page's copy behind) is the same.

Runs as a child process (`python -m agent.outbox.pagescan FILE`, the wanted row numbers as a
JSON list on stdin, the rows as JSON lines on stdout): the process moving the file aside may
still hold SQLite connections to it, and closing a descriptor of the file there would drop
their POSIX locks (SQLite's with them).
"""

from __future__ import annotations

import json
import mmap
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_TABLE_LEAF = 13
_WAL_HEADER = 32
_FRAME_HEADER = 24


def _varint(buf: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    """SQLite's variable-length integer at `pos`: (value, position after it)."""
    value = 0
    for i in range(8):
        byte = buf[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


def _value(kind: int, data: bytes, pos: int) -> tuple[Any, int]:
    if kind == 0:
        return None, pos
    if 1 <= kind <= 6:
        size = (1, 2, 3, 4, 6, 8)[kind - 1]
        return int.from_bytes(data[pos:pos + size], "big", signed=True), pos + size
    if kind == 7:
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 8
    if kind in (8, 9):
        return kind - 8, pos
    if kind >= 12:
        size = (kind - 12) // 2
        raw = data[pos:pos + size]
        if len(raw) != size:
            raise ValueError("record cut short")
        return (raw.decode() if kind % 2 else raw), pos + size
    raise ValueError(f"serial type {kind}")


def _record(data: bytes) -> list[Any]:
    header_size, pos = _varint(data, 0)
    kinds = []
    while pos < header_size:
        kind, pos = _varint(data, pos)
        kinds.append(kind)
    pos = header_size
    values = []
    for kind in kinds:
        value, pos = _value(kind, data, pos)
        values.append(value)
    return values


class _File:
    def __init__(self, db: mmap.mmap, wal: dict[int, bytes]) -> None:
        self.db = db
        page_size = int.from_bytes(db[16:18], "big")
        self.page_size = 65536 if page_size == 1 else page_size
        self.usable = self.page_size - db[20]
        self.wal = wal  # the newest image of each page in the write-ahead log

    def page(self, number: int) -> bytes:
        if number in self.wal:
            return self.wal[number]
        start = (number - 1) * self.page_size
        return self.db[start:start + self.page_size]

    def cells(self, number: int, page: bytes) -> Iterator[tuple[int, bytes]]:
        """(row number, record) of each cell of a table leaf page."""
        head = 100 if number == 1 else 0
        if len(page) < head + 8 or page[head] != _TABLE_LEAF:
            return
        count = int.from_bytes(page[head + 3:head + 5], "big")
        u = self.usable
        x = u - 35
        for i in range(count):
            try:
                at = int.from_bytes(page[head + 8 + 2 * i:head + 10 + 2 * i], "big")
                size, pos = _varint(page, at)
                rowid, pos = _varint(page, pos)
                if size <= x:
                    yield rowid, bytes(page[pos:pos + size])
                    continue
                m = (u - 12) * 32 // 255 - 23
                local = m + (size - m) % (u - 4)
                local = local if local <= x else m
                parts = [bytes(page[pos:pos + local])]
                have = local
                nxt = int.from_bytes(page[pos + local:pos + local + 4], "big")
                while have < size and nxt:
                    over = self.page(nxt)
                    parts.append(bytes(over[4:u][:size - have]))
                    have += len(parts[-1])
                    nxt = int.from_bytes(over[:4], "big")
                if have == size:
                    yield rowid, b"".join(parts)
            except (IndexError, ValueError):
                continue  # a damaged cell: the rest of the page may still read


def _wal_pages(path: Path, page_size: int) -> dict[int, bytes]:
    pages: dict[int, bytes] = {}
    try:
        data = path.read_bytes()
    except OSError:
        return pages
    step = _FRAME_HEADER + page_size
    for at in range(_WAL_HEADER, len(data) - step + 1, step):
        number = int.from_bytes(data[at:at + 4], "big")
        if number:
            pages[number] = data[at + _FRAME_HEADER:at + step]
    return pages


def _shaped(values: list[Any]) -> bool:
    """An events row (n, id, priority, type, created, size, bootid, body), not a damaged
    page's noise that happens to parse."""
    if len(values) != 8:
        return False
    _, ev_id, prio, etype, created, size, bootid, body = values
    return (all(isinstance(v, str) for v in (ev_id, etype, bootid, body))
            and isinstance(prio, int) and isinstance(size, int)
            and isinstance(created, int | float))


def _u32(buf: bytes, at: int) -> int:
    return int.from_bytes(buf[at:at + 4], "big")


def _free_pages(file: _File, pages: int) -> set[int] | None:
    """The pages on the file's freelist (what a drop or a delete freed: stale rows), or None
    when the list itself does not read back whole."""
    first = file.page(1)
    trunk, total = _u32(first, 32), _u32(first, 36)
    free: set[int] = set()
    while trunk:
        if trunk in free or trunk > pages:
            return None
        free.add(trunk)
        page = file.page(trunk)
        count = _u32(page, 4)
        if count > file.usable // 4 - 2:
            return None
        free.update(_u32(page, 8 + 4 * j) for j in range(count))
        trunk = _u32(page, 0)
    return free if len(free) == total else None


def scan(path: Path, copied: set[int], listed: set[int],
         emit: Callable[[list[Any]], None]) -> None:
    """emit([n, id, priority, type, created, size, bootid, body]) for each events row on a
    page in use (not on the freelist; the log's newest image of a page preferred) that is not
    among `copied`. With a freelist that does not read back, only rows in `listed` (what
    the index still lists) are taken: a row on a free page may have been deleted."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as db:
        if len(db) < 100:
            return
        file = _File(db, {})
        file.wal = _wal_pages(Path(f"{path}-wal"), file.page_size)
        pages = max(len(db) // file.page_size, max(file.wal, default=0))
        free = _free_pages(file, pages)
        taken = set(copied)
        for number in range(1, pages + 1):
            if free is not None and number in free:
                continue
            for rowid, data in file.cells(number, file.page(number)):
                if rowid in taken or (free is None and rowid not in listed):
                    continue
                try:
                    values = _record(data)
                except (IndexError, ValueError, UnicodeDecodeError, struct.error):
                    continue
                if _shaped(values):
                    taken.add(rowid)
                    emit([rowid, *values[1:]])


def main() -> int:
    path = Path(sys.argv[1])
    known = json.loads(sys.stdin.read())
    copied = {int(n) for n in known["copied"]}
    listed = {int(n) for n in known["listed"]}

    def emit(row: list[Any]) -> None:
        sys.stdout.write(json.dumps(row) + "\n")

    scan(path, copied, listed, emit)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
