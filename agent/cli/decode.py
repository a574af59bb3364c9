"""`o2o-edge decode ble`: decode capture lines from stdin, one output line per input line."""

from __future__ import annotations

import argparse
import json
import sys

from drivers.ble.capture import parse_capture_line
from drivers.ble.decoders import decode_advert
from drivers.errors import DriverError


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
