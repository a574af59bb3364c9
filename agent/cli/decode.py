"""`o2o-edge decode ble` (capture lines on stdin, one output line each) and
`o2o-edge decode ndef HEX|-` (one NDEF message)."""

from __future__ import annotations

import argparse
import json
import sys

from drivers.ble.capture import parse_capture_line
from drivers.ble.decoders import decode_advert
from drivers.errors import DriverError
from drivers.nfc.ndef import decode_message


def cmd_decode_ble(args: argparse.Namespace) -> int:
    out = sys.stdout
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            out.write("null\n")
            continue
        try:
            advert = parse_capture_line(line)
        except DriverError as exc:
            out.write(json.dumps({"error": f"line {lineno}: {exc}"}) + "\n")
            continue
        beacon = decode_advert(advert.manufacturer_data, advert.service_data)
        out.write(("null" if beacon is None else json.dumps(beacon.as_json())) + "\n")
    return 0


def _hex_bytes(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("not hex: give the message as hex digits, e.g. d1010855...") from None


def cmd_decode_ndef(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.hex == "-" else args.hex
    try:
        data = _hex_bytes(text)
        decoded = decode_message(data)
    except (ValueError, DriverError) as exc:
        print(f"o2o-edge: malformed NDEF: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(decoded))  # \u-escaped: a hostile tag cannot send escape codes to a terminal
    return 0
