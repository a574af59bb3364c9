"""`o2o-edge decode ble` (capture lines on stdin, one output line each),
`o2o-edge decode ndef HEX|-` (one NDEF message) and `o2o-edge decode qr FILE...` (images)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from typing import Final

from agent.cli.lines import bounded_lines
from drivers.ble.capture import MAX_LINE as MAX_CAPTURE_LINE
from drivers.ble.capture import parse_capture_line
from drivers.ble.decoders import decode_advert
from drivers.errors import DriverError
from drivers.nfc.ndef import decode_message
from drivers.qr.imagesize import image_size


def cmd_decode_ble(args: argparse.Namespace) -> int:
    out = sys.stdout
    for lineno, line, problem in bounded_lines(sys.stdin.buffer, 4 * MAX_CAPTURE_LINE):
        if problem:  # too long (in UTF-8 bytes) or not UTF-8: never held whole, answered
            out.write(json.dumps({"error": f"line {lineno}: {problem}"}) + "\n")
            continue
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


def _regular(name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name
        return False


# A picture this large is refused before it is decoded: decoding allocates it whole (a 1 MB
# PNG declaring 30000x30000 took ~900 MB); 50 MP is a 48 MP phone photo and then some
MAX_PIXELS: Final = 50_000_000


def _too_large(name: str) -> str:
    """Why the image file `name` is refused unread ("" when it may be decoded)."""
    try:
        with open(name, "rb") as fh:
            size = image_size(fh)
    except OSError:
        return ""  # imread fails on it too and says so
    if size is None or size[0] * size[1] <= MAX_PIXELS:
        return ""
    return (f"the image declares {size[0]}x{size[1]} pixels, more than "
            f"{MAX_PIXELS // 1_000_000} MP: not decoded; scale it down first")


def cmd_decode_qr(args: argparse.Namespace) -> int:
    import time

    # OpenCV's own cap for the formats not read by image_size, read once when cv2 loads
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
    import cv2

    from agent.config import load_config
    from agent.qr_policy import qr_policy
    from drivers.qr.classify import classify
    from drivers.qr.decoders import make_decoder

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # we say it ourselves
    cfg = load_config(args.config)
    policy = qr_policy(cfg)
    decoder = make_decoder(args.decoder or cfg.qr.decoder)
    failed = False
    for name in args.files:
        # only a regular file is read: OpenCV blocks for ever on a FIFO
        regular = _regular(name)
        too_large = _too_large(name) if regular else ""
        if too_large:
            failed = True
            print(json.dumps({"file": name, "error": too_large}))
            continue
        try:
            grey = cv2.imread(name, cv2.IMREAD_GRAYSCALE) if regular else None
        except cv2.error:  # OpenCV's pixel cap (a format image_size does not read)
            grey = None
        if grey is None:
            failed = True
            print(json.dumps({"file": name, "error": "cannot read it as an image (missing, "
                                                     "unreadable, not PNG/JPEG/BMP/..., or "
                                                     f"over {MAX_PIXELS // 1_000_000} MP)"}))
            continue
        codes = []
        for code in decoder.decode(grey):
            verdict = classify(code.payload, policy, time.time(), text=code.text,
                               kind=code.kind)
            codes.append({"payload": code.text or code.payload.decode("utf-8", "replace"),
                          "class": verdict.cls, "reason": verdict.reason})
        print(json.dumps({"file": name, "codes": codes}), flush=True)
    return 1 if failed else 0
