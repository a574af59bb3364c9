"""`o2o-edge staff-view`: the staff view for phones and handhelds on the store's LAN; `pin`
and `token` make the lines its settings file keeps (kiosk/staffview/settings.py).

Registered by the kiosk package (entry point "staff-view" of "o2o_edge.commands"); aiohttp
loads only when the view runs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from typing import Any

import tomli_w

from agent.contracts.alerts import token_digest
from kiosk.errors import KioskError
from kiosk.pin import hash_pin
from kiosk.settings import load_settings
from kiosk.staffview.auth import new_token
from kiosk.staffview.settings import StaffViewSettings, load_staff_view


def add_parser(sub: Any) -> None:
    p = sub.add_parser("staff-view", help="the staff view for phones on the store LAN")
    p.add_argument("--config", help="the store's configuration file (for [bus] socket)")
    p.add_argument("--settings", help="the staff view's settings file (default "
                   "$O2O_EDGE_STAFF_VIEW, /etc/o2o-edge/staff-view.toml)")
    p.set_defaults(handler=cmd_staff_view)
    ssub = p.add_subparsers(dest="staff_view_command", metavar="ACTION")
    q = ssub.add_parser("pin", help="hash a staff member's PIN for [staff_view.staff]")
    q.add_argument("--name", required=True, help="the name staff sign in with")
    q.add_argument("--pin", help="the PIN (default: asked for, not echoed)")
    q.set_defaults(handler=cmd_pin)
    t = ssub.add_parser("token", help="a new device token for [staff_view.devices]")
    t.add_argument("--name", required=True, help="the handheld's name, like counter-1")
    t.set_defaults(handler=cmd_token)
    b = ssub.add_parser("bus-token", help="a new staff bus token: the view's bus_token and "
                        "the digest for the agent's [staff] bus_tokens")
    b.set_defaults(handler=cmd_bus_token)


def _table(table: str, name: str, value: str) -> str:
    """The lines to paste into the settings, any name quoted and escaped as TOML needs."""
    return tomli_w.dumps({"staff_view": {table: {name: value}}}).rstrip("\n")


def cmd_pin(args: argparse.Namespace) -> int:
    pin = args.pin or getpass.getpass(f"PIN for {args.name} (4-12 digits): ")
    try:
        hashed = hash_pin(pin)
    except ValueError as exc:
        print(f"o2o-edge staff-view: {exc}", file=sys.stderr)
        return 2
    print(_table("staff", args.name, hashed))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    token, hashed = new_token()
    print(f"# give the handheld this token once (it is not kept): {token}")
    print(_table("devices", args.name, hashed))
    return 0


def cmd_bus_token(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    print("# the staff view's settings file (staff-view.toml), readable by the view alone:")
    print(tomli_w.dumps({"staff_view": {"bus_token": token}}).rstrip("\n"))
    print("# the agent's configuration (config.toml); keep any digests already listed:")
    print(tomli_w.dumps({"staff": {"bus_tokens": [token_digest(token)]}}).rstrip("\n"))
    return 0


def cmd_staff_view(args: argparse.Namespace) -> int:
    try:
        cfg = load_settings(args.config)
        view = load_staff_view(args.settings)
        _usable(view)
    except KioskError as exc:
        print(f"o2o-edge staff-view: {exc}", file=sys.stderr)
        return 2
    from kiosk.staffview import run  # aiohttp loads only to serve

    try:
        asyncio.run(run.serve(view, cfg.bus.socket))
    except run.ServeError as exc:
        print(f"o2o-edge staff-view: {exc}", file=sys.stderr)
        return 2
    return 0


def _usable(view: StaffViewSettings) -> None:
    from kiosk.errors import KioskReason

    if not view.enabled:
        raise KioskError(KioskReason.SETTINGS, f"the staff view is off ({view.source}); set "
                         "[staff_view] enabled = true in its settings file to serve it")
    if not view.staff and not view.devices:
        raise KioskError(KioskReason.SETTINGS, f"{view.source}: nobody could sign in; add a "
                         "PIN ('o2o-edge staff-view pin') or a device token first")
    if not view.bus_token:
        raise KioskError(KioskReason.SETTINGS, f"{view.source}: no bus_token, so the agent "
                         "would show the view no alerts; run 'o2o-edge staff-view bus-token' "
                         "and put its lines in both files")


