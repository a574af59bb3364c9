"""Orders, appointments and loyalty cards from CSV or JSON files (until upstream sync).

CSV: a header row naming the columns; the first column says what the file holds (order_id,
appt_id or card). JSON: a list of such objects, or {"orders": [...], "appointments": [...],
"loyalty": [...]}. Every row is checked; a file with any bad row is refused as a whole, with
each problem named by its row, so a half-imported file never leaves the store's list wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.checkin.db import ORDER_STATUSES
from agent.errors import AgentError, Reason

KINDS = {"order_id": "orders", "appt_id": "appointments", "card": "loyalty"}
KEY = {kind: col for col, kind in KINDS.items()}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_CODE = re.compile(r"[A-Za-z0-9]{4,10}")
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]{0,40}")


class ImportProblem(AgentError):
    def __init__(self, message: str) -> None:
        super().__init__(Reason.INVALID_EVENT, message)


def _when(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return dt.timestamp() if dt.tzinfo else None
    return None


def _int(value: Any, default: int) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def check_row(kind: str, raw: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    name = str(raw.get("first_name") or "").strip()
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: first_name must be up to 40 printable characters")
    row: dict[str, Any] = {"first_name": name}
    key = KEY[kind]
    ident = str(raw.get(key) or "").strip()
    if not _ID.fullmatch(ident):
        problems.append(f"{where}: {key} must be 1-64 letters, digits, '_', '.', ':' or '-'")
    row[key] = ident.lower() if kind == "loyalty" else ident
    if kind in ("orders", "appointments"):
        code = str(raw.get("code") or "").strip().upper()
        if code and not _CODE.fullmatch(code):
            problems.append(f"{where}: code must be 4-10 letters or digits")
        row["code"] = code or None
    if kind == "orders":
        status = str(raw.get("status") or "preparing").strip().lower()
        if status not in ORDER_STATUSES:
            problems.append(f"{where}: status must be one of {', '.join(ORDER_STATUSES)}")
        eta = _int(raw.get("eta_min"), 3)
        if eta is None or not 0 <= eta <= 240:
            problems.append(f"{where}: eta_min must be minutes from 0 to 240")
        row.update(status=status, eta_min=eta, store=str(raw.get("store") or "").strip())
    elif kind == "appointments":
        at = _when(raw.get("at"))
        if at is None:
            problems.append(f"{where}: at must be a time with its zone, like "
                            "2026-12-01T10:30:00+01:00 (or epoch seconds)")
        row.update(at=at, service=str(raw.get("service") or "").strip()[:60])
    else:
        points = _int(raw.get("points"), 0)
        if points is None or points < 0:
            problems.append(f"{where}: points must be a whole number from 0")
        row["points"] = points
    return row, problems


def _kind_of(row: dict[str, Any], where: str) -> str:
    for col, kind in KINDS.items():
        if col in row:
            return kind
    raise ImportProblem(f"{where}: no order_id, appt_id or card column: cannot tell what "
                        "the file holds")


def parse_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ImportProblem(f"{path}: not valid JSON ({exc})") from None
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
                groups.setdefault(section or _kind_of(r, where), []).append((where, r))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ImportProblem(f"{path}: empty, or no header row")
        kind = _kind_of(dict.fromkeys(reader.fieldnames, ""), f"{path} header")
        groups[kind] = [(f"{path} line {i + 2}", r) for i, r in enumerate(reader)]
    out: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for kind, rows in groups.items():
        seen: set[str] = set()
        for where, raw in rows:
            row, bad = check_row(kind, raw, where)
            ident = row[KEY[kind]]
            if ident in seen:
                bad.append(f"{where}: {ident!r} appears twice")
            seen.add(str(ident))
            problems += bad
            out.setdefault(kind, []).append(row)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ImportProblem(f"nothing was imported; fix these and run it again:\n  {shown}{more}")
    return out
