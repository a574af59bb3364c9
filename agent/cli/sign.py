"""`o2o-edge sign`: a store-link document signed for upstream tooling — the body (JSON, from a
file or stdin) in the JWS envelope (agent/storelink/docs.py), printed as one line to publish
as it is, e.g. `o2o-edge sign ... | mosquitto_pub -t o2o/v1/STORE/all/orders -q 1 -r -s`.
`--public-key` prints the [link] public_keys line for the key instead."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from agent.cli.qr import parse_duration
from agent.contracts.shared_settings import check_name

MAX_BODY_BYTES = 2 * 1024 * 1024


def _body(source: str) -> Any:
    from agent.storelink import jws

    try:
        if source == "-":
            raw = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            with Path(source).open("rb") as fh:
                raw = fh.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        raise ValueError(
            f"{source}: cannot be read ({exc.strerror or exc}); give a JSON file or - for stdin"
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise ValueError(f"{source}: over {MAX_BODY_BYTES} bytes; a document is at most that")
    try:
        return jws.loads(raw, "body")
    except jws.JwsError as exc:
        raise ValueError(f"{source}: {exc}") from None


def cmd_sign(args: argparse.Namespace) -> int:
    from agent.keys import load_private_key, public_key_text
    from agent.storelink.docs import KINDS, MAX_VERSION, key_id, sign_jws

    try:
        key = load_private_key(Path(args.key))
        if args.public_key:
            public = key.public_key()
            print(
                f'public_keys = ["{public_key_text(public)}"]  # for [link]; key id '
                f"{key_id(public)}"
            )
            return 0
        missing = [f"--{n}" for n in ("kind", "store", "doc_version") if getattr(args, n) is None]
        if missing:
            raise ValueError(
                f"{', '.join(m.replace('_', '-') for m in missing)} needed (or --public-key)"
            )
        if args.kind not in KINDS:
            raise ValueError(f"--kind is one of {', '.join(KINDS)}, not {args.kind[:40]!r}")
        for flag, name in (("--store", args.store), ("--device", args.device)):
            problem = check_name(name)
            if problem:
                raise ValueError(f"{flag} {name[:70]!r}: {problem}")
        if not 0 <= args.doc_version <= MAX_VERSION:
            raise ValueError(
                f"--doc-version is 0 to {MAX_VERSION}, higher than the one applied last"
            )
        issued = int(time.time()) if args.issued is None else args.issued
        if not 0 <= issued < 2**53:
            raise ValueError("--issued is seconds since 1970")
        body = _body(args.body)
        raw = sign_jws(
            key,
            args.kind,
            args.store,
            args.device,
            args.doc_version,
            issued,
            issued + parse_duration(args.valid),
            body,
        )
    except ValueError as exc:
        print(f"o2o-edge sign: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(raw.decode("ascii") + "\n")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sign",
        help="sign a store-link document (orders, config, a command, ...) for "
        "upstream: a JWS (Ed25519) on stdout",
        description="Signs BODY (a JSON file, or - for stdin) as the body of a document of "
        "--kind for --store and --device, with the key from 'o2o-edge qr keygen'. "
        "The device trusts the key through [link] public_keys (--public-key "
        "prints that line).",
    )
    p.add_argument(
        "body", nargs="?", default="-", help="the document's body, JSON (default -: stdin)"
    )
    p.add_argument("--key", required=True, help="the private key (PEM) to sign with")
    p.add_argument(
        "--public-key",
        action="store_true",
        help="print the [link] public_keys line for --key, sign nothing",
    )
    p.add_argument("--kind", help="orders, appointments, config, content, consent, keys or cmd")
    p.add_argument("--store", help="the store it is for")
    p.add_argument(
        "--device",
        default="all",
        help="the device it is for (default all: every device of the store)",
    )
    p.add_argument(
        "--doc-version",
        type=int,
        metavar="N",
        help="its version: a device applies only a higher one than it has for the "
        "kind (a time stamp serves)",
    )
    p.add_argument(
        "--valid", default="1d", help="how long it may be applied (default 1d, up to 366d)"
    )
    p.add_argument("--issued", type=float, help=argparse.SUPPRESS)  # tests: a fixed time
    p.set_defaults(handler=cmd_sign)
