"""`o2o-edge qr keygen|make`: the keys that sign pickup and offer codes, and QR codes for print
or screen — pickup codes, offer codes, and campaign links carrying UTM tags."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from agent.contracts.links import with_tags

_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_VALID_S: Final = 366 * 86400  # a code valid longer than a year is a typo


def parse_duration(text: str) -> int:
    m = _DURATION.fullmatch(text.strip())
    if not m or len(m.group(1)) > 9 or not 0 < int(m.group(1)) * _UNIT[m.group(2)] <= MAX_VALID_S:
        raise ValueError(f"a duration like 30m, 12h or 7d, up to 366d, not {text!r}")
    return int(m.group(1)) * _UNIT[m.group(2)]


def with_utm(url: str, tags: dict[str, str | None]) -> str:
    """The link with utm_* parameters set (others kept; an existing utm_x replaced), as an
    ASCII URI so that every reader takes the same text from the code."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"a campaign link must be an https URL, not {url!r}")
    return with_tags(url, {f"utm_{k}": v for k, v in tags.items()})


def _write(text: str, out: str | None) -> None:
    import qrcode

    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    try:
        code.make(fit=True)
    except (ValueError, qrcode.exceptions.DataOverflowError):  # past version 40
        raise ValueError(f"{len(text):,} characters is too long for a QR code (at most about "
                         "2,300 at this error correction); shorten the link") from None
    if not out:
        code.print_ascii(out=sys.stdout, invert=True)
        print(text)
        return
    if out.endswith(".svg"):
        import qrcode.image.svg

        code.make_image(image_factory=qrcode.image.svg.SvgPathImage).save(out)
    elif out.endswith(".png"):
        code.make_image().save(out)
    else:
        raise ValueError(f"--out must end in .png or .svg, not {out!r}")
    print(text)


def cmd_qr_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.keys import private_key_pem, public_key_text

    path = Path(args.file)
    if path.exists():
        print(f"o2o-edge: {path} exists; not overwriting a signing key", file=sys.stderr)
        return 2
    key = Ed25519PrivateKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
    print(f"private key written to {path} (keep it on the order system, not on the Pi)",
          file=sys.stderr)
    # one key pair per use: the order system signs pickups, marketing signs offers
    print(f"pickup_public_keys = [\"{public_key_text(key.public_key())}\"]  # for [qr] (or "
          "offer_public_keys, for a key that signs offer codes)")
    return 0


def cmd_qr_make(args: argparse.Namespace) -> int:
    from agent.keys import load_private_key
    from drivers.qr.pickup import make_code

    try:
        if args.pickup:
            if not args.key:
                raise ValueError("--pickup needs --key PRIVATE_KEY.pem (see 'o2o-edge qr keygen')")
            key = load_private_key(Path(args.key))
            text = make_code(key, args.pickup, int(time.time()) + parse_duration(args.valid),
                             args.store or "")
        elif args.offer:
            text = _offer(args)
        else:
            tags: dict[str, Any] = {"source": args.source, "medium": args.medium,
                                    "campaign": args.campaign, "term": args.term,
                                    "content": args.content}
            text = with_utm(args.url, tags)
        _write(text, args.out)
    except ValueError as exc:
        print(f"o2o-edge: {exc}", file=sys.stderr)
        return 2
    return 0


def _offer(args: argparse.Namespace) -> str:
    from drivers.qr import offer

    if not args.key or not args.campaign or not args.text:
        raise ValueError("--offer CODE_ID needs --key PRIVATE_KEY.pem, --campaign C and "
                         "--text OFFER_TEXT_ID (e.g. coffee-20)")
    from agent.keys import load_private_key

    stores = tuple(s for s in (args.store or "").split(",") if s)
    return offer.make_code(load_private_key(Path(args.key)), args.offer, args.campaign,
                           args.text, int(time.time()) + parse_duration(args.valid), stores)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("qr", help="pickup-code keys, and QR codes for pickup and campaigns")
    qsub = p.add_subparsers(dest="qr_command", metavar="ACTION", required=True)
    q = qsub.add_parser("keygen", help="a new Ed25519 key pair for signing pickup or offer "
                                       "codes")
    q.add_argument("file", help="where to write the private key (PEM, mode 0600)")
    q.set_defaults(handler=cmd_qr_keygen)
    q = qsub.add_parser(
        "make", help="a pickup code (--pickup ORDER --key K), an offer code (--offer CODE_ID "
                     "--key K --campaign C --text T) or a campaign link (--url U)",
        description="Prints the code on the terminal, or writes --out FILE.png / FILE.svg; "
                    "the encoded text is printed too.")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--pickup", metavar="ORDER", help="order id for a signed pickup code")
    what.add_argument("--url", help="https campaign link to tag with UTM parameters")
    what.add_argument("--offer", metavar="CODE_ID",
                      help="a signed offer code with this per-code id (redeemed once)")
    q.add_argument("--text", help="an offer's text id: the words the kiosk shows (coffee-20)")
    q.add_argument("--key", help="private key (PEM) that signs pickup or offer codes")
    q.add_argument("--store", help="the store the order is collected at, or the stores an "
                                   "offer is good in, comma-separated (default: any)")
    q.add_argument("--valid", default="7d", help="how long a pickup or offer code is valid "
                                                 "(default 7d)")
    for tag in ("source", "medium", "campaign", "term", "content"):
        q.add_argument(f"--{tag}", help=f"utm_{tag}")
    q.add_argument("--out", help="FILE.png or FILE.svg (default: the terminal)")
    q.set_defaults(handler=cmd_qr_make)
