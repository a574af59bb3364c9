"""Each decoder reads codes drawn with qrcode; the zbar backend explains a missing library."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import qrcode

from drivers.errors import DriverError
from drivers.qr.decoders import DECODERS, make_decoder, to_grey


def _grey(text: str, box: int = 6) -> Any:
    img = qrcode.make(text, box_size=box, border=4).get_image().convert("L")
    return np.array(img)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_every_decoder_reads_a_plain_code(name: str) -> None:
    text = "https://shop.example/p/42?utm_source=shelf"
    codes = make_decoder(name).decode(_grey(text))
    assert [c.payload for c in codes] == [text.encode()]


def test_robust_decoder_rescues_a_frame_with_glare() -> None:
    grey = _grey("O2OP1:HARDFRAME-0123456789", box=3)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    # a ceiling light reflected on a phone screen: a bright blob over part of the code
    blob = np.exp(-(((xx - w * 0.6) ** 2 + (yy - h * 0.4) ** 2) / (2 * (w * 0.18) ** 2)))
    glared = np.clip(grey.astype(np.float32) * 0.6 + blob * 255, 0, 255).astype(np.uint8)
    assert make_decoder("zxing").decode(glared) == []  # too hard for one plain attempt
    assert [c.payload for c in make_decoder("robust").decode(glared)] == [
        b"O2OP1:HARDFRAME-0123456789"]


def test_colour_frames_are_converted() -> None:
    grey = _grey("colour")
    bgr = np.dstack([grey, np.zeros_like(grey), grey])  # channel 1 empty: pyzbar reads 0 only
    assert to_grey(bgr).ndim == 2
    assert make_decoder("zbar").decode(to_grey(bgr))[0].payload == b"colour"


def test_missing_zbar_library_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m.startswith("pyzbar")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "pyzbar", None)  # import fails like a missing libzbar
    with pytest.raises(DriverError, match="apt-get install libzbar0"):
        make_decoder("zbar")


def test_unknown_decoder_lists_the_choices() -> None:
    with pytest.raises(DriverError, match="opencv, robust, zbar, zxing"):
        make_decoder("magic")
