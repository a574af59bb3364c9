"""Orders, appointments and loyalty cards from CSV or JSON files (until upstream sync).

CSV: a header row naming the columns; the first column says what the file holds (order_id,
appt_id or card). JSON: a list of such objects, or {"orders": [...], "appointments": [...],
"loyalty": [...]}. Every row is checked; a file with any bad row is refused as a whole, with
each problem named by its row, so a half-imported file never leaves the store's list wrong.

Bounded: a file over MAX_FILE_BYTES or MAX_ROWS is refused before its rows are kept, a CSV is
read a row at a time, every field has a length cap, numbers a range — a wrong file (a database
dump, an export of the whole chain's history) is one clear refusal, not gigabytes of memory.
"""

from __future__ import annotations

import csv
import json
import math
import re
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from agent.checkin.db import ORDER_STATUSES
from agent.errors import AgentError, Reason

KINDS = {"order_id": "orders", "appt_id": "appointments", "card": "loyalty"}
KEY = {kind: col for col, kind in KINDS.items()}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_CODE = re.compile(r"[A-Za-z0-9]{4,10}")
_UNPRINTABLE = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_NAME = re.compile(f"[^{_UNPRINTABLE}]{{0,40}}")
_PRINTABLE = re.compile(f"[^{_UNPRINTABLE}]*")
_INT = re.compile(r"[+-]?[0-9]{1,12}")
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")

# A store's day is thousands of rows, a few hundred KiB; these leave a wide margin and keep
# an import's memory near 100 MiB (measured in tests/abuse/test_orders_import.py).
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
MAX_ROWS: Final = 100_000
MAX_FIELD: Final = 256  # characters of any one field (names are 40, ids 64, services 60)
MAX_KEYS: Final = 32  # keys of one JSON object (a row has at most 6 that matter)
MAX_POINTS: Final = 10**9  # loyalty points; SQLite's INTEGER ends at 2**63
MAX_SHOWN: Final = 20  # problems listed; the rest are counted
# appointment times: epoch seconds within this century (a typo in the year is a refusal)
EARLIEST: Final = 946_684_800.0  # 2000-01-01
LATEST: Final = 4_102_444_800.0  # 2100-01-01


class ImportProblem(AgentError):
    def __init__(self, message: str) -> None:
        super().__init__(Reason.INVALID_EVENT, message)


def _when(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO time with its zone (a time without its zone is a
    different moment in every store), within EARLIEST..LATEST; None otherwise."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(value, str) and _EPOCH.fullmatch(value.strip())):
        at = float(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
            if dt.tzinfo is None:
                return None
            at = dt.timestamp()
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return at if math.isfinite(at) and EARLIEST <= at <= LATEST else None


def _int(value: Any, default: int) -> int | None:
    """A whole number from JSON (an int, or a float with nothing after the point) or CSV
    text (digits only, at most 12); None for anything else (true, 1.5, 1e400, "12abc")."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def _text(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    """A field as text: strings and numbers only, at most MAX_FIELD characters."""
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.append(f"{where}: {key} must be text or a number")
        return ""
    text = str(value).strip()
    if len(text) > MAX_FIELD:
        problems.append(f"{where}: {key} is {len(text):,} characters; at most {MAX_FIELD}")
        return ""
    return text


def check_row(kind: str, raw: dict[str, Any], where: str,
              partial: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A row checked, with its defaults; `partial` (an increment's row): only the columns
    `raw` carries, besides its id — what a new row still needs is checked where it is added
    (agent/checkin/db.py StoreDb.patch)."""
    problems: list[str] = []
    name = _text(raw, "first_name", where, problems)
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: first_name must be up to 40 printable characters")
    row: dict[str, Any] = {"first_name": name}
    key = KEY[kind]
    ident = _text(raw, key, where, problems)
    if not _ID.fullmatch(ident):
        problems.append(f"{where}: {key} must be 1-64 letters, digits, '_', '.', ':' or '-'")
    row[key] = ident.lower() if kind == "loyalty" else ident
    if kind in ("orders", "appointments"):
        code = _text(raw, "code", where, problems).upper()
        if code and not _CODE.fullmatch(code):
            problems.append(f"{where}: code must be 4-10 letters or digits")
        row["code"] = code or None
    if kind == "orders":
        if not row["code"] and not name and not partial:
            problems.append(f"{where}: an order needs a code or a first_name: the shopper "
                            "types the one and is greeted by the other")
        status = _text(raw, "status", where, problems).lower() or "preparing"
        if status not in ORDER_STATUSES:
            problems.append(f"{where}: status must be one of {', '.join(ORDER_STATUSES)}")
        eta = _int(raw.get("eta_min"), 3)
        if eta is None or not 0 <= eta <= 240:
            problems.append(f"{where}: eta_min must be minutes from 0 to 240")
        store = _text(raw, "store", where, problems)
        if not _PRINTABLE.fullmatch(store) or len(store) > 64:
            problems.append(f"{where}: store must be up to 64 printable characters")
        row.update(status=status, eta_min=eta, store=store)
    elif kind == "appointments":
        at = _when(raw.get("at"))
        if at is None and not (partial and raw.get("at") is None):
            problems.append(f"{where}: at must be a time with its zone, like "
                            "2026-12-01T10:30:00+01:00 (or epoch seconds), in 2000-2099")
        service = _text(raw, "service", where, problems)[:60]
        if not _PRINTABLE.fullmatch(service):
            problems.append(f"{where}: service must be printable text")
        row.update(at=at, service=service)
    else:
        points = _int(raw.get("points"), 0)
        if points is None or not 0 <= points <= MAX_POINTS:
            problems.append(f"{where}: points must be a whole number from 0 to {MAX_POINTS:,}")
        row["points"] = points
    if partial:
        row = {k: v for k, v in row.items() if k == key or raw.get(k) is not None}
    return row, problems


def _kind_of(row: dict[str, Any], where: str) -> str:
    for col, kind in KINDS.items():
        if col in row:
            return kind
    raise ImportProblem(f"{where}: no order_id, appt_id or card column: cannot tell what "
                        "the file holds")


def _open_checked(path: Path) -> int:
    """The file's size; ImportProblem if it is not a regular file of a sane size (a FIFO
    would block, a device or a huge export would never end)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ImportProblem(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImportProblem(f"{path}: is a directory; give the CSV or JSON file")
    if not stat.S_ISREG(st.st_mode):
        raise ImportProblem(f"{path}: is not a regular file; give the CSV or JSON file")
    if st.st_size > MAX_FILE_BYTES:
        raise ImportProblem(f"{path}: {st.st_size:,} bytes is more than an import takes "
                            f"({MAX_FILE_BYTES:,}); split it into smaller files, or check "
                            "it is the right file")
    return st.st_size


def _refuse_number(text: str) -> float:
    raise ImportProblem(f"{text} is not a number an import takes; give a finite number")


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        _refuse_number(text[:40])
    return value


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_KEYS:
        raise ImportProblem(f"an object has {len(pairs)} keys; a row has at most {MAX_KEYS}")
    return dict(pairs)


def _json_rows(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind or "", where, row) of a JSON file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        # every object and list costs ~60-200 bytes parsed: count them (an upper bound: a
        # brace inside a string counts too) before building any, so 16 MiB of "[{},{},..."
        # is refused instead of becoming half a gigabyte of empty dicts
        if text.count("{") + text.count("[") > MAX_ROWS + 8:
            raise ImportProblem(f"more than {MAX_ROWS:,} rows (objects); split it into "
                                "smaller files")
        data = json.loads(text, parse_constant=_refuse_number, parse_float=_json_float,
                          object_pairs_hook=_json_object)
    except UnicodeDecodeError as exc:
        raise ImportProblem(f"{path}: byte {exc.start}: not UTF-8 text; save it as UTF-8") \
            from None
    except RecursionError:
        raise ImportProblem(f"{path}: nested too deeply; rows are flat objects") from None
    except ImportProblem as exc:  # refused by the count or the parse hooks
        raise ImportProblem(f"{path}: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4,300 digits
        raise ImportProblem(f"{path}: not valid JSON ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ImportProblem(f"{path}: cannot be read ({exc.strerror})") from None
    sections = data if isinstance(data, dict) else {"": data}
    for section, rows in sections.items():
        if section not in ("", "orders", "appointments", "loyalty") or \
                not isinstance(rows, list):
            raise ImportProblem(f"{path}: expected a list of rows or an object with "
                                "\"orders\", \"appointments\" and/or \"loyalty\" lists")
        for i, r in enumerate(rows):
            where = f"{path} {section or 'row'} {i + 1}"
            if not isinstance(r, dict):
                raise ImportProblem(f"{where}: must be an object")
            yield section, where, r


def _csv_rows(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, where, row) of a CSV file, read a row at a time."""
    reader: Any = None
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise ImportProblem(f"{path}: empty, or no header row")
            header = [h.strip() for h in header]
            kind = _kind_of(dict.fromkeys(header, ""), f"{path} header")
            for fields in reader:
                if any(fields):
                    yield kind, f"{path} line {reader.line_num}", dict(zip(header, fields,
                                                                           strict=False))
    except csv.Error as exc:  # a field over csv's own limit (128 KiB)
        raise ImportProblem(f"{path} line {reader.line_num}: not CSV ({exc})") from None
    except UnicodeDecodeError:
        raise ImportProblem(f"{path} line {_first_bad_line(path)}: not UTF-8 text; save it "
                            "as UTF-8") from None
    except OSError as exc:
        raise ImportProblem(f"{path}: cannot be read ({exc.strerror})") from None


def _first_bad_line(path: Path) -> int:
    """The line of the first byte that is not UTF-8 (the decoder reads in blocks, so its own
    position says nothing of lines)."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def parse_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    _open_checked(path)
    rows = _json_rows(path) if path.suffix.lower() == ".json" else _csv_rows(path)
    out: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    more = 0
    seen: dict[tuple[str, str, Any], str] = {}  # (kind, column, value) -> where first seen
    count = 0
    for section, where, raw in rows:
        count += 1
        if count > MAX_ROWS:
            raise ImportProblem(f"{path}: more than {MAX_ROWS:,} rows; split it into smaller "
                                "files")
        kind = section or _kind_of(raw, where)
        row, bad = check_row(kind, raw, where)
        for column in (KEY[kind], "code"):
            value = row.get(column)
            if value is None or value == "":
                continue
            first = seen.setdefault((kind, column, value), where)
            if first != where:
                what = "" if column == KEY[kind] else f"{column} "
                bad.append(f"{where}: {what}{str(value)!r} appears twice (first at "
                           f"{' '.join(first.rsplit(' ', 2)[-2:])})")
        if bad:
            room = MAX_SHOWN - len(problems)
            problems += bad[:max(room, 0)]
            more += max(len(bad) - max(room, 0), 0)
        if not problems:  # once refused, the rows are not kept
            out.setdefault(kind, []).append(row)
    if problems:
        shown = "\n  ".join(problems)
        extra = f"\n  ... and {more} more" if more else ""
        raise ImportProblem(f"nothing was imported; fix these and run it again:\n  {shown}{extra}")
    return out
