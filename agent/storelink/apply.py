"""Applying verified documents: orders and appointments as full snapshots or increments,
every row checked like an import; one bad row refuses the whole document — two rows with
one id or one code included, and a code another order already has."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from agent.checkin.db import IncompleteRow, StoreDb
from agent.checkin.importer import KEY, check_row
from agent.storelink.docs import Doc, DocRefused
from agent.storelink.receiver import Applier


def _rows(doc: Doc, table: str) -> tuple[str, list[dict[str, Any]]]:
    """The document's mode and its rows checked: a snapshot's whole, an increment's only the
    fields each carries."""
    body = doc.body
    if not isinstance(body, dict) or body.get("mode") not in ("snapshot", "increment") \
            or not isinstance(body.get("rows"), list):
        raise DocRefused("malformed", f'a {table} document needs {{"mode": "snapshot" or '
                                      '"increment", "rows": [...]}')
    rows, problems = [], []
    partial = body["mode"] == "increment"
    for i, raw in enumerate(body["rows"]):
        if not isinstance(raw, dict):
            problems.append(f"row {i + 1}: must be an object")
            continue
        row, bad = check_row(table, raw, f"row {i + 1}", partial)
        rows.append(row)
        problems += bad
    problems += _twice(rows, KEY[table]) + _twice(rows, "code")
    if problems:
        raise DocRefused("malformed", "; ".join(problems[:5]))
    return str(body["mode"]), rows


def _twice(rows: list[dict[str, Any]], column: str) -> list[str]:
    """A problem for each value of `column` (an id or a code) two rows share."""
    first: dict[Any, int] = {}
    out = []
    for i, row in enumerate(rows):
        value = row.get(column)
        if value is None or value == "":
            continue
        if value in first:
            out.append(f"row {i + 1}: {column} {str(value)[:64]!r} is row {first[value] + 1}'s too")
        else:
            first[value] = i
    return out


def store_data_appliers(db: StoreDb, orders_ready: Callable[[list[str]], object] | None = None,
                        ) -> dict[str, Applier]:
    """`orders_ready`: told the orders an increment made ready while their shoppers are
    checked in and waiting (staff alerts)."""
    def table_applier(table: str) -> Applier:
        def apply(doc: Doc) -> None:
            mode, rows = _rows(doc, table)
            ready: list[str] = []
            try:
                if mode == "snapshot":
                    db.snapshot(table, rows)
                else:
                    ready = db.patch(table, rows)
            except sqlite3.IntegrityError as exc:  # a code another row of the table has
                raise DocRefused("conflict", f"{exc}; nothing of the document applied") \
                    from None
            except IncompleteRow as exc:
                raise DocRefused("malformed", f"{exc}; nothing of the document applied") \
                    from None
            if ready and orders_ready is not None:
                orders_ready(ready)
        return apply

    return {"orders": table_applier("orders"), "appointments": table_applier("appointments")}
