"""QR decoding on camera-like frames: the project's decoder against pyzbar, zxing-cpp called
directly (one call per frame, its defaults) and OpenCV's QRCodeDetector, in the same run on
the same frames (simulators/qr_frames.py).

    python3 dev.py bench-qr [--frames N] [--json FILE]

Sets: 640x480 and 1280x720, each "mixed" (a quarter of the frames spoiled by each effect at
random) and "hard" (perspective plus two or three of blur, noise, dim light, glare, JPEG on
every frame). A frame counts as read when the right payload comes out. Reported per set and
decoder: success rate and mean ms per frame (greyscale conversion included, as a camera
loop would do it). Goals: ours >= 8x faster than pyzbar, a success rate above all three,
and >= 95 % on the hard sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from drivers.qr.decoders import OpenCvDecoder, RobustDecoder, ZbarDecoder, to_grey
from simulators.qr_frames import Frame, frame_set


class _ZxingDirect:
    """zxing-cpp as a caller would use it without the project: one call, its defaults."""

    name = "zxing-direct"

    def __init__(self) -> None:
        import zxingcpp

        self._zx = zxingcpp

    def decode(self, grey: Any) -> list[bytes]:
        return [bytes(r.bytes) for r in self._zx.read_barcodes(grey)]


def _measure(decoder: Any, frames: list[Frame]) -> dict[str, Any]:
    read = 0
    t0 = time.perf_counter()
    for f in frames:
        out = decoder.decode(to_grey(f.image))
        payloads = [c if isinstance(c, bytes) else c.payload for c in out]
        read += f.payload.encode() in payloads
    ms = (time.perf_counter() - t0) / len(frames) * 1000
    return {"read": read, "frames": len(frames), "success": round(read / len(frames), 3),
            "ms_per_frame": round(ms, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=100, help="frames per set (default 100)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    decoders = {"ours": RobustDecoder(), "pyzbar": ZbarDecoder(), "zxing-direct": _ZxingDirect(),
                "opencv": OpenCvDecoder()}
    results: dict[str, Any] = {}
    for size in ((640, 480), (1280, 720)):
        for hard in (False, True):
            name = f"{size[0]}x{size[1]}-{'hard' if hard else 'mixed'}"
            frames = frame_set(args.frames, size, hard, seed=size[0] + hard)
            row = {d: _measure(dec, frames) for d, dec in decoders.items()}
            ours = row["ours"]
            row["speed_vs_pyzbar"] = round(row["pyzbar"]["ms_per_frame"]
                                           / ours["ms_per_frame"], 1)
            row["best_other_success"] = max(row[d]["success"] for d in decoders if d != "ours")
            results[name] = row
            print(f"{name}: ours {ours['success']:.1%} {ours['ms_per_frame']} ms, "
                  + ", ".join(f"{d} {row[d]['success']:.1%} {row[d]['ms_per_frame']} ms"
                              for d in decoders if d != "ours")
                  + f"; {row['speed_vs_pyzbar']}x pyzbar's speed", file=sys.stderr, flush=True)
    results["goals"] = ">= 8x pyzbar's speed; success above all three; >= 95 % on hard sets"
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
