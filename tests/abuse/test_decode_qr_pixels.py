"""`o2o-edge decode qr` on a small file that declares a huge picture: refused in one line
from its header, at the memory of any other file (a 0.9 MB PNG declaring 30000x30000 took
1.8 GB to decode)."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import qrcode
from PIL import Image

from agent.cli.decode import MAX_PIXELS
from tests.conftest import ROOT

# the CLI in a child that reports its own peak RSS (VmHWM, KiB, since exec) on stderr
MEASURED = ("import re, sys\nfrom agent.cli.main import main\nrc = main(sys.argv[1:])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print('maxrss_kib', hwm, file=sys.stderr)\nsys.exit(rc)\n")
BOUND_KIB = 300 * 1024  # the CLI with OpenCV and zxing loaded: ~75 MiB here


def small_png_of(path: Path, w: int, h: int) -> None:
    """A real, valid grey PNG of w x h black pixels (zlib level 1: fast, about 1/230)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    z = zlib.compressobj(1)
    rows = bytes((w + 1) * 1000)  # a filter byte and w pixels per row, 1,000 rows at a time
    idat = b"".join(z.compress(rows[: (w + 1) * min(1000, h - k)]) for k in range(0, h, 1000))
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat + z.flush()) + chunk(b"IEND", b""))


def decode(tmp_path: Path, *files: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[qr]\ndomains = ["shop.example"]\n')
    res = subprocess.run([sys.executable, "-c", MEASURED, "decode", "qr",
                          *map(str, files), "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    found = re.search(r"maxrss_kib (\d+)", res.stderr)
    assert found, res.stderr
    return res, int(found.group(1))


def test_a_small_png_declaring_30000x30000_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    small_png_of(big, 30_000, 30_000)
    assert big.stat().st_size < 8 << 20  # 3.9 MB (0.9 MB at zlib's level 9)
    good = tmp_path / "good.png"
    qrcode.make("https://shop.example/p/1").save(good)
    res, peak_kib = decode(tmp_path, big, good)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 2
    assert "30000x30000" in lines[0]["error"] and "50 MP" in lines[0]["error"]
    assert [c["class"] for c in lines[1]["codes"]] == ["product"]  # and it went on
    assert peak_kib < BOUND_KIB, f"peak RSS {peak_kib} KiB"


def test_a_format_not_read_from_its_header_meets_opencvs_cap(tmp_path: Path) -> None:
    tif = tmp_path / "big.tif"  # 64 MP in 93 KB: TIFF's size is not read from its header here
    Image.new("L", (8000, 8000)).save(tif, compression="tiff_deflate")
    res, peak_kib = decode(tmp_path, tif)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    [line] = [json.loads(x) for x in res.stdout.splitlines()]
    assert "over 50 MP" in line["error"]
    assert peak_kib < BOUND_KIB


def test_a_picture_at_the_cap_is_decoded(tmp_path: Path) -> None:
    side = int(MAX_PIXELS ** 0.5) // 2  # 12.5 MP: well within
    ok = tmp_path / "ok.png"
    small_png_of(ok, side, side)
    res, _ = decode(tmp_path, ok)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["codes"] == []
