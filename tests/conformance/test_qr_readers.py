"""The QR codes `o2o-edge qr make` draws, read by two decoders the agent does not use — zbar
(pyzbar, what many scanner apps and Linux tools read with) and ZXing (zxing-cpp, Android's) —
each reading exactly the text the command printed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT

pyzbar = pytest.importorskip("pyzbar.pyzbar", reason="pyzbar and libzbar0 (apt-get install "
                                                     "libzbar0)")
zxingcpp = pytest.importorskip("zxingcpp")
Image = pytest.importorskip("PIL.Image")

LONG = "https://shop.example/p/" + "a1-" * 700  # ~2,100 characters: near the largest code

URLS = {
    "utm-unicode": ["--url", "https://shop.example/sale?x=1&q=a b", "--campaign",
                    "\u00c9t\u00e9 \U0001f600 & =#%", "--source", "\u05e9\u05dc\u05d5\u05dd",
                    "--content", "\"'\\<>"],
    "long": ["--url", LONG, "--medium", "qr"],
    # an IRI: printed as its URI (host in IDNA, path percent-encoded), one text for every reader
    "non-ascii-path": ["--url", "https://shop.example/caf\u00e9/\u00fc?x=1", "--source",
                       "poster"],
}


def make(tmp_path: Path, *args: str) -> tuple[str, Path]:
    """The text `qr make` printed and the PNG it wrote."""
    out = tmp_path / "code.png"
    res = subprocess.run([*CLI, "qr", "make", *args, "--out", str(out)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1], out


def read_both(png: Path) -> tuple[list[str], list[str]]:
    """What zbar and ZXing read in the image (zbar returns bytes: read as UTF-8)."""
    with Image.open(png) as image:
        zbar = [s.data.decode("utf-8", "replace")
                for s in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])]
        zxing = [r.text for r in zxingcpp.read_barcodes(image)]
    return zbar, zxing


def test_a_pickup_code_reads_the_same_in_zbar_and_zxing(tmp_path: Path) -> None:
    key = tmp_path / "pickup.pem"
    keygen = subprocess.run([*CLI, "qr", "keygen", str(key)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert keygen.returncode == 0, keygen.stderr
    text, png = make(tmp_path, "--pickup", "A-2002", "--key", str(key), "--store", "store-1")
    assert text.startswith("O2OP1:")
    assert read_both(png) == ([text], [text])


@pytest.mark.parametrize("args", list(URLS.values()), ids=list(URLS))
def test_a_campaign_code_reads_the_same_in_zbar_and_zxing(tmp_path: Path,
                                                          args: list[str]) -> None:
    text, png = make(tmp_path, *args)
    assert text.startswith("https://shop.example/")
    assert read_both(png) == ([text], [text])
