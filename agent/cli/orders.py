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
    q.set_defaults(handler=me.cmd_orders_import)


def cmd_orders_import(args: argparse.Namespace) -> int:
    from agent.checkin.db import StoreDb
    from agent.checkin.importer import ImportProblem, parse_file
    from agent.config import load_config

    cfg = load_config(args.config)
    try:
        groups = parse_file(args.file)
    except ImportProblem as exc:
        print(f"o2o-edge orders: {exc}", file=sys.stderr)
        return 1
    db = StoreDb(cfg.kiosk.store_db)
    try:
        done = {kind: db.replace(kind, rows) for kind, rows in groups.items()}
    finally:
        db.close()
    print("imported " + ", ".join(f"{n} {kind}" for kind, n in done.items())
          + f" into {cfg.kiosk.store_db}")
    return 0
