"""`o2o-edge nfc read|write`: staff tools for the NFC reader — see what a tag holds (as the
agent would report it), and write a shelf tag's link, read back and verified."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from drivers.errors import DriverError


def add_parser(sub: Any) -> None:
    from agent.cli import nfc as me

    p = sub.add_parser("nfc", help="read or write an NFC tag on the reader (staff)")
    nsub = p.add_subparsers(dest="nfc_command", metavar="ACTION", required=True)
    for name, helptext in (("read", "wait for a tag and print what the agent would report"),
                           ("write", "write a link (URI or Smart Poster) to a tag, read it back "
                                     "and verify it")):
        q = nsub.add_parser(name, help=helptext)
        q.add_argument("--config", help="configuration file (default: the usual search)")
        q.add_argument("--reader", help="reader path (default: [nfc] reader), e.g. usb, "
                                        "usb:054c:06c3, tty:USB0:pn532, udp:127.0.0.1:54321")
        q.add_argument("--wait", type=float, default=10.0,
                       help="seconds to wait for a tag (default 10)")
        if name == "write":
            q.add_argument("--uri", required=True, help="the link, e.g. https://shop.example/p/42")
            q.add_argument("--title", help="a title: writes a Smart Poster instead of a bare URI")
            q.add_argument("--lang", default="en", help="the title's language (default en)")
            q.add_argument("--lock", action="store_true",
                           help="make the tag read-only after writing (cannot be undone)")
            q.set_defaults(handler=me.cmd_nfc_write)
        else:
            q.set_defaults(handler=me.cmd_nfc_read)


def _config(args: argparse.Namespace) -> Any:
    from agent.config import load_config
    from agent.config_checks import CHECKS, check_text
    from agent.errors import ConfigError

    if not 0 <= args.wait <= 86400:  # also refuses nan
        raise ConfigError(f"--wait {args.wait}: seconds from 0 to 86400")
    if args.reader is not None and (problem := check_text(args.reader)
                                    or CHECKS[("nfc", "reader")](args.reader)):
        raise ConfigError(f"--reader {args.reader!r}: use {problem}")
    return load_config(args.config)


def _fail(text: str) -> int:
    print(f"o2o-edge nfc: {text}", file=sys.stderr)
    return 1


def cmd_nfc_write(args: argparse.Namespace) -> int:
    from agent.qr_policy import qr_policy
    from drivers.nfc.ndef_encode import smartposter_message, uri_message
    from drivers.nfc.writer import write_message
    from drivers.qr.classify import classify

    cfg = _config(args)
    verdict = classify(args.uri, qr_policy(cfg), time.time())
    if verdict.cls == "rejected" and verdict.reason != "host-not-allowlisted":
        return _fail(f"{args.uri!r} would be rejected by every reader ({verdict.reason}): "
                     "nothing was written; check the link")
    if verdict.reason == "host-not-allowlisted":
        print(f"warning: {args.uri!r} is not on this store's [qr] domains: the agent will "
              "report taps on it as rejected", file=sys.stderr)
    try:
        message = (smartposter_message(args.uri, {args.lang: args.title}) if args.title
                   else uri_message(args.uri))
    except ValueError as exc:
        return _fail(str(exc))
    reader = args.reader or cfg.nfc.reader
    print(f"hold a tag on the reader ({reader}) ...", file=sys.stderr)
    try:
        done = write_message(reader, message, lock=args.lock, wait_s=args.wait,
                             targets=tuple(cfg.nfc.targets))
    except DriverError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # nfcpy parsing a path it cannot use (udp:HOST:1 -> "tcpmux")
        return _fail(f"cannot open the reader {reader!r} ({exc}); check --reader / [nfc] reader")
    print(f"wrote {done.message_bytes} of {done.capacity} bytes to {done.product} "
          f"{done.uid.hex()}, read back and verified" + (", locked" if done.locked else ""))
    return 0


def cmd_nfc_read(args: argparse.Namespace) -> int:
    from agent.nfc_source import NfcSource
    from drivers.nfc.reader import NfcpyReader, open_reader
    from drivers.nfc.writer import wait_for_tag

    cfg = _config(args)
    reader = args.reader or cfg.nfc.reader
    try:
        clf = open_reader(reader)
        try:
            _, read = wait_for_tag(clf, tuple(cfg.nfc.targets), args.wait)
        finally:
            clf.close()
    except DriverError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # nfcpy parsing a path it cannot use (udp:HOST:1 -> "tcpmux")
        return _fail(f"cannot open the reader {reader!r} ({exc}); check --reader / [nfc] reader")
    out: list[Any] = []
    NfcSource(cfg, NfcpyReader(reader), lambda _t, d: out.append(d)).on_tap(read)
    print(json.dumps(out[0], ensure_ascii=True))
    return 0
