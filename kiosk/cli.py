"""`o2o-edge kiosk`: the touch kiosk in this terminal, or served to a browser with
textual-serve (one kiosk process per browser connection); `kiosk pin` makes the staff PIN's
hash for the configuration.

The kiosk registers this command itself (entry point "kiosk" of the group "o2o_edge.commands"
in pyproject.toml); the agent's command line finds it there and never imports the kiosk. It
reads the kiosk's own settings (kiosk/settings.py), never the agent's configuration. Textual
and textual-serve are imported when the command runs: `o2o-edge --help` should not load them."""

from __future__ import annotations

import argparse
import getpass
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import kiosk
from kiosk.errors import KioskError
from kiosk.pin import hash_pin
from kiosk.settings import load_settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("kiosk", help="the touch kiosk (terminal, or --serve for a browser)")
    p.add_argument("--config", help="configuration file (default: the usual search)")
    p.add_argument("--serve", nargs="?", const="", metavar="HOST:PORT",
                   help="serve the kiosk over HTTP for Chromium --kiosk (default [kiosk] serve, "
                        "127.0.0.1:8765)")
    p.add_argument("--sessions", type=int, metavar="N",
                   help="with --serve: kiosk sessions (browser connections, each a kiosk "
                        "process) at once, 1 to 16 (default [kiosk] serve_sessions, 2)")
    p.set_defaults(handler=cmd_kiosk)
    ksub = p.add_subparsers(dest="kiosk_command", metavar="ACTION")
    q = ksub.add_parser("pin", help="hash a staff PIN for [kiosk] staff_pin_hash")
    q.add_argument("--pin", help="the PIN (default: asked for, not echoed)")
    q.set_defaults(handler=cmd_kiosk_pin)


def cmd_kiosk(args: argparse.Namespace) -> int:
    try:
        cfg = load_settings(args.config)
    except KioskError as exc:
        print(f"o2o-edge kiosk: {exc}", file=sys.stderr)
        return 2
    if args.serve is not None:
        # textual-serve and aiohttp load only to serve (a terminal kiosk and --help skip them)
        import textual_serve

        from kiosk import serve

        # each session's kiosk starts from this module, not the whole o2o-edge command line
        # (which loads every command's modules: ~10 MiB more per session, and slower)
        command = [sys.executable, "-m", "kiosk.cli"]
        if args.config:
            command += ["--config", args.config]
        sessions = cfg.kiosk.serve_sessions if args.sessions is None else args.sessions
        try:
            if not 1 <= sessions <= serve.MAX_SESSIONS:
                raise serve.ServeError(f"--sessions {sessions}: give 1 to {serve.MAX_SESSIONS} "
                                       "(a store screen needs 1, 2 while its page reloads)")
            host, port = serve.parse_listen(args.serve or cfg.kiosk.serve)
            # textual-serve's own scripts and fonts, our page (no fonts from the internet)
            server = serve.KioskServer(
                shlex.join(command), host=host, port=port, max_sessions=sessions,
                title="o2o-edge kiosk", statics_path=Path(textual_serve.__file__).parent / "static",
                templates_path=Path(kiosk.__file__).parent / "web",
                agent_socket=cfg.bus.socket, scale=cfg.kiosk.scale)
            server.bind()
        except serve.ServeError as exc:
            print(f"o2o-edge kiosk: {exc}", file=sys.stderr)
            return 2
        server.serve()
        return 0
    from kiosk.app import KioskApp  # Textual loads when a kiosk runs, not for --help

    KioskApp(cfg).run()
    return 0


def cmd_kiosk_pin(args: argparse.Namespace) -> int:
    pin = args.pin or getpass.getpass("staff PIN (4-12 digits): ")
    try:
        hashed = hash_pin(pin)
    except ValueError as exc:
        print(f"o2o-edge kiosk: {exc}", file=sys.stderr)
        return 2
    print(f'[kiosk]\nstaff_pin_hash = "{hashed}"')
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m kiosk.cli [--config FILE]`: the kiosk alone, as the served page's sessions
    run it (`o2o-edge kiosk` is the same command in the whole command line)."""
    parser = argparse.ArgumentParser(prog="o2o-edge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kiosk", *(sys.argv[1:] if argv is None else argv)])
    # the kiosk's log lines as o2o-edge writes them (stderr: the server's, or the journal)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Any = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
