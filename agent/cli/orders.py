"""`o2o-edge orders import FILE`: the store's orders, appointments and loyalty cards for
kiosk check-in, from CSV or JSON (until upstream sync delivers them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    from agent.cli import orders as me

    p = sub.add_parser("orders", help="the orders, appointments and loyalty cards check-in uses")
    osub = p.add_subparsers(dest="orders_command", metavar="ACTION", required=True)
    q = osub.add_parser(
        "import", help="add or update rows from a CSV or JSON file (all or nothing)",
        description="CSV with a header row whose first column is order_id, appt_id or card; or "
                    'JSON: a list of rows, or {"orders": [...], "appointments": [...], '
                    '"loyalty": [...]}. Orders: order_id, code, first_name, status (preparing, '
                    "ready, collected, cancelled), eta_min, store. Appointments: appt_id, code, "
                    "first_name, at (ISO time with zone), service. Loyalty: card, first_name, "
                    "points. A file with any bad row is refused whole, each problem named.")
    q.add_argument("file", type=Path)
    q.add_argument("--config", help="configuration file (default: the usual search)")
    q.add_argument("--json", action="store_true",
                   help='on success print {"imported": {"orders": N, ...}, "store_db": PATH}')
    q.set_defaults(handler=me.cmd_orders_import)


def cmd_orders_import(args: argparse.Namespace) -> int:
    import sqlite3

    from agent.checkin.db import StoreDb
    from agent.checkin.importer import ImportProblem, parse_file
    from agent.config import load_config

    cfg = load_config(args.config)
    try:
        groups = parse_file(args.file)
    except ImportProblem as exc:
        print(f"o2o-edge orders: {exc}", file=sys.stderr)
        return 1
    try:
        db = StoreDb(cfg.kiosk.store_db)
    except (OSError, sqlite3.Error) as exc:
        print(f"o2o-edge orders: cannot open the store database {cfg.kiosk.store_db} ({exc}); "
              "check [kiosk] store_db and its folder's permissions; nothing was imported",
              file=sys.stderr)
        return 1
    try:
        taken = _codes_taken(db, groups)
        if taken:
            print("o2o-edge orders: nothing was imported; these codes belong to other rows "
                  "already in the store's list (change them, or import those rows too):\n  "
                  + "\n  ".join(taken[:20])
                  + (f"\n  ... and {len(taken) - 20} more" if len(taken) > 20 else ""),
                  file=sys.stderr)
            return 1
        done = {kind: db.replace(kind, rows) for kind, rows in groups.items()}
    except sqlite3.IntegrityError as exc:  # a code taken between the check and the write
        print(f"o2o-edge orders: refused by the store database ({exc}); nothing of that "
              "list was imported; run it again", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"o2o-edge orders: the store database {cfg.kiosk.store_db} failed ({exc}); "
              "check the disk (o2o-edge doctor)", file=sys.stderr)
        return 1
    finally:
        db.close()
    if getattr(args, "json", False):
        import json

        print(json.dumps({"imported": done, "store_db": str(cfg.kiosk.store_db)}))
        return 0
    print("imported " + ", ".join(f"{n} {kind}" for kind, n in done.items())
          + f" into {cfg.kiosk.store_db}")
    return 0


def _codes_taken(db: Any, groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Codes of the file that another row (another id) already has in the database: the
    kiosk finds a row by its code, so one code must mean one row. Checked before anything
    is written, so the orders are not imported when the appointments would fail."""
    from agent.checkin.importer import KEY

    problems = []
    lookups = {"orders": db.order_by_code, "appointments": db.appointment_by_code}
    for kind, rows in groups.items():
        if kind not in lookups:
            continue
        key = KEY[kind]
        for row in rows:
            if row.get("code"):
                other = lookups[kind](row["code"])
                if other is not None and other[key] != row[key]:
                    problems.append(f"{kind}: code {row['code']!r} of {row[key]!r} is "
                                    f"{other[key]!r}'s")
    return problems
