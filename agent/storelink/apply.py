"""Applying verified documents: orders and appointments as full snapshots or increments,
every row checked like an import; one bad row refuses the whole document."""

from __future__ import annotations

from typing import Any

from agent.checkin.db import StoreDb
from agent.checkin.importer import check_row
from agent.storelink.docs import Doc, DocRefused
from agent.storelink.receiver import Applier


def _rows(doc: Doc, table: str) -> tuple[str, list[dict[str, Any]]]:
    body = doc.body
    if not isinstance(body, dict) or body.get("mode") not in ("snapshot", "increment") \
            or not isinstance(body.get("rows"), list):
        raise DocRefused("malformed", f'a {table} document needs {{"mode": "snapshot" or '
                                      '"increment", "rows": [...]}')
    rows, problems = [], []
    for i, raw in enumerate(body["rows"]):
        if not isinstance(raw, dict):
            problems.append(f"row {i + 1}: must be an object")
            continue
        row, bad = check_row(table, raw, f"row {i + 1}")
        rows.append(row)
        problems += bad
    if problems:
        raise DocRefused("malformed", "; ".join(problems[:5]))
    return str(body["mode"]), rows


def store_data_appliers(db: StoreDb) -> dict[str, Applier]:
    def table_applier(table: str) -> Applier:
        def apply(doc: Doc) -> None:
            mode, rows = _rows(doc, table)
            if mode == "snapshot":
                db.snapshot(table, rows)
            else:
                db.replace(table, rows)
        return apply

    return {"orders": table_applier("orders"), "appointments": table_applier("appointments")}
