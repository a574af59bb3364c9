"""`o2o-edge` command line: argument parsing and dispatch. Each command lives in its own module."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from agent import __version__
from agent.cli import oserrors
from agent.errors import AgentError
from drivers.errors import DriverError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SOFTWARE = 70  # sysexits' EX_SOFTWARE: an internal error, not the user's

Handler = Callable[[argparse.Namespace], int]
# Commands other packages of the distribution register for themselves ("kiosk" by the kiosk;
# "demo", "scenario", "soak" by the simulators): each entry point names a function that adds
# its subparser. The agent imports neither package, and runs without them.
COMMANDS_GROUP: Final = "o2o_edge.commands"


class JournalFormatter(logging.Formatter):
    """One line per record with the syslog priority journald reads from a "<N>" prefix, so
    `journalctl -p warning` works; journald stamps the time itself."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
        logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")  # one record, one journal line
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{record.name}: {text}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="PATH",
        help="config file (default: $O2O_EDGE_CONFIG, then /etc/o2o-edge/config.toml, "
             "then built-in defaults)",
    )


def build_parser(registered: bool = True) -> argparse.ArgumentParser:
    """The command line; with `registered` False, the agent's own commands only (finding the
    others reads every installed distribution's metadata: ~70 ms, at each `emit`)."""
    return _build(registered)[0]


def _build(registered: bool) -> tuple[argparse.ArgumentParser, frozenset[str]]:
    from agent.cli import (
        ble,
        collect,
        commands,
        decode,
        doctor,
        enroll,
        nfc,
        orders,
        pos,
        qr,
        report,
        sign,
    )

    parser = argparse.ArgumentParser(
        prog="o2o-edge",
        description="In-store edge agent: buffers touchpoint events in SQLite and syncs them "
                    "upstream over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"o2o-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent in the foreground (SIGTERM/SIGINT stop it)")
    _add_config(p)
    p.set_defaults(handler=commands.cmd_run)

    p = sub.add_parser(
        "emit", help="send events to the running agent; prints each id once committed",
        description="With --type, sends one event. Without it, reads JSON objects with "
                    "\"type\" and \"data\" from stdin, one per line; then --data is a "
                    "usage error and --priority applies to the lines without their own.",
    )
    _add_config(p)
    p.add_argument("--type", dest="event_type", help="event type, e.g. o2o.kiosk.checkin")
    p.add_argument("--data", help="event data as JSON (default {}); needs --type")
    p.add_argument("--priority", type=int, help="0-9, higher leaves first (default by type; "
                   "without --type: for stdin lines that give none)")
    p.set_defaults(handler=commands.cmd_emit)

    p = sub.add_parser("status", help="uplink state, outbox depth and age, drops, last errors")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=commands.cmd_status)

    p = sub.add_parser("tail", help="print events live as the agent commits them, one line "
                                    "each (time, seq, type, the key fields)")
    _add_config(p)
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N events")
    p.add_argument("--json", action="store_true", help="each event as its JSON, one a line")
    p.set_defaults(handler=commands.cmd_tail)

    p = sub.add_parser("outbox", help="inspect the local buffer (works with the agent stopped)")
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    q = osub.add_parser("stats", help="depth, bytes, age, drops")
    _add_config(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=commands.cmd_outbox_stats)
    q = osub.add_parser("export", help="write buffered events as JSON lines")
    _add_config(q)
    q.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    q.set_defaults(handler=commands.cmd_outbox_export)

    p = sub.add_parser("config", help="check or show the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = csub.add_parser("check", help="validate the configuration; exit 2 naming every "
                                      "problem, warn about O2O_EDGE_ variables that set nothing")
    _add_config(q)
    q.add_argument("--json", action="store_true",
                   help='print {"ok", "source", "problems", "warnings"}')
    q.set_defaults(handler=commands.cmd_config_check)
    q = csub.add_parser("show", help="print the effective configuration, secrets masked")
    _add_config(q)
    q.set_defaults(handler=commands.cmd_config_show)

    ble.add_parser(sub)
    qr.add_parser(sub)
    pos.add_parser(sub)
    nfc.add_parser(sub)
    orders.add_parser(sub)
    doctor.add_parser(sub)
    report.add_parser(sub)
    collect.add_parser(sub)
    sign.add_parser(sub)
    enroll.add_parser(sub)

    p = sub.add_parser("decode", help="decode captured frames (pure decoders, no hardware)")
    dsub = p.add_subparsers(dest="decode_command", metavar="KIND", required=True)
    q = dsub.add_parser(
        "ble", help="BLE capture lines on stdin -> one line each: the beacon, null, or an error",
        description="Reads JSON lines in bleak's advertisement shape and writes one line per "
                    "input line: the decoded beacon, null when it is not a beacon, or "
                    '{"error": ...} for a line that is not valid capture JSON.',
    )
    q.set_defaults(handler=decode.cmd_decode_ble)
    q = dsub.add_parser(
        "ndef", help="an NDEF message in hex -> its records as JSON (exit 2 if malformed)",
        description="Decodes an NDEF message (as read from a tag) given in hex, or '-' to read "
                    "the hex from stdin; spaces, colons and newlines are ignored.",
    )
    q.add_argument("hex", help="the message in hex, or - for stdin")
    q.set_defaults(handler=decode.cmd_decode_ndef)
    q = dsub.add_parser(
        "qr", help="image files -> one JSON line each: the codes found and their class",
        description="Finds QR codes in each image and classifies them with the [qr] policy of "
                    "the configuration (allowlisted domains, pickup keys). One line per file: "
                    '{"file", "codes": [{"payload", "class", "reason"}]} or {"file", "error"}; '
                    "exit 1 if any file could not be read.",
    )
    q.add_argument("files", nargs="+", metavar="FILE")
    q.add_argument("--config", help="configuration file (default: the usual search)")
    q.add_argument("--decoder", choices=["robust", "zxing", "zbar", "opencv"],
                   help="decoder (default: [qr] decoder)")
    q.set_defaults(handler=decode.cmd_decode_qr)

    own = frozenset(sub.choices)
    if registered:
        add_registered_commands(sub)
    return parser, own


def add_registered_commands(sub: Any) -> None:
    """The commands other packages register (COMMANDS_GROUP). One whose package is not
    installed is still listed, and says so when run, instead of being an unknown command."""
    # importlib.metadata loads only when it is needed: its import costs ~55 ms of each command
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as exc:
            _add_unavailable(sub, ep, exc)
            continue
        register(sub)


def _add_unavailable(sub: Any, ep: EntryPoint, exc: ImportError) -> None:
    package = ep.value.split(".", 1)[0].split(":", 1)[0]
    missing = isinstance(exc, ModuleNotFoundError) and exc.name == package
    if missing:
        why = (f"this command comes with the o2o-edge package '{package}', which is not "
               "installed here; install the whole o2o-edge distribution to use it")
    else:  # the package is there but does not load: a broken install or a bug
        why = (f"this command's package '{package}' does not load ({type(exc).__name__}: "
               f"{str(exc)[:200]}); reinstall o2o-edge, or report it with this line")
    p = sub.add_parser(ep.name, help=f"(unavailable: '{package}' is not installed)" if missing
                       else f"(unavailable: '{package}' does not load)", add_help=False)
    p.set_defaults(any_arguments=True)

    def unavailable(args: argparse.Namespace) -> int:
        print(f"o2o-edge {ep.name}: {why}", file=sys.stderr)
        return EXIT_ERROR

    p.set_defaults(handler=unavailable)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, own = _build(registered=False)
    # the top-level options take no value: the first other word is the command
    if next((a for a in argv if not a.startswith("-")), None) not in own:
        parser = build_parser()  # help, another package's command or a mistake: all of them
    if any("\0" in a for a in argv):  # only in-process callers can pass one (execve cannot)
        print("o2o-edge: an argument contains a NUL byte; remove it", file=sys.stderr)
        return EXIT_USAGE
    # an unavailable command takes any arguments (to say what to install, not what is wrong
    # with them); everywhere else unknown arguments are the usual usage error
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler_ = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):  # stderr goes to journald (run by systemd)
        handler_.setFormatter(JournalFormatter())
    else:
        handler_.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[handler_])
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except AgentError as exc:
        print(f"o2o-edge: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.reason.value == "config" else EXIT_ERROR
    except DriverError as exc:  # a reader, a camera, BlueZ: the message says what to do
        print(f"o2o-edge {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except sqlite3.Error as exc:  # a database file the user's settings point at
        print(f"o2o-edge {args.command}: database error ({exc}); check the database paths "
              "in the configuration, their permissions and the disk ('o2o-edge doctor')",
              file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a file or a socket the user named: say which and what to do
        print(f"o2o-edge {args.command}: {oserrors.describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the last resort: a bug, and said to be one
        if args.verbose:
            traceback.print_exc()
        print(f"o2o-edge {args.command}: internal error ({type(exc).__name__}: "
              f"{str(exc)[:200]}); this is a bug, please report it with the output of "
              "the same command run with -v", file=sys.stderr)
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
