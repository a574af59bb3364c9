"""Codes beyond the camera-like sets: light on dark, text in Latin-1 and Shift-JIS, small
codes in dim and blurred frames, other barcode kinds. Frames are drawn with qrcode and with
zxing-cpp's writer (simulators/qr_frames.variant_set), on seeds the decoder was not tuned
on, and each set is cross-checked with zbar or zxing-cpp so a set nobody can read does not
pass for a decoder's failure."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import zxingcpp
from pyzbar import pyzbar

from agent.config import Config, QrConfig
from agent.qr_source import QrSource
from drivers.qr.camera import Grabbed
from drivers.qr.classify import QrPolicy, classify
from drivers.qr.decoders import Code, RobustDecoder, make_decoder, to_grey
from simulators.qr_frames import SETS, Variant, make_variant, variant_set

SEED = 77  # not the seed the robust decoder's passes were tuned on (1)


def _texts(codes: list[Code]) -> list[str | None]:
    return [c.text for c in codes]


def _read(name: str, n: int) -> tuple[int, int]:
    """(frames the robust decoder reads, frames zxing-cpp or zbar read with their defaults)"""
    ours = others = 0
    decoder = RobustDecoder(budget_ms=200)  # a loaded CI machine must not decide the result
    for f in variant_set(name, n, seed=SEED):
        grey = to_grey(f.image)
        ours += f.payload in _texts(decoder.decode(grey))
        others += (f.payload in [r.text for r in zxingcpp.read_barcodes(grey)]
                   or f.payload in [d.data.decode("utf-8", "replace")
                                    for d in pyzbar.decode(grey)])
    return ours, others


@pytest.mark.parametrize("name", ["inverted", "latin1", "shift-jis", "small-dim"])
def test_robust_decoder_reads_every_frame_of_the_plain_variant_sets(name: str) -> None:
    ours, others = _read(name, 8)
    assert others >= 6, f"the {name} set is not readable by zxing-cpp or zbar either"
    assert ours == 8


def test_robust_decoder_reads_small_codes_in_dim_blurred_frames() -> None:
    ours, others = _read("small-dim-blurred", 12)
    # before the enlarged-region pass: 2 of 30 on the tuning seed; after: 18 of 30
    assert ours >= 5 and ours >= others


def test_inverted_code_is_read_by_the_default_decoder_and_zxing_alone() -> None:
    frame = variant_set("inverted", 1, seed=SEED)[0]
    grey = to_grey(frame.image)
    assert "inverted" in frame.effects and pyzbar.decode(grey) == []  # zbar cannot
    for name in ("robust", "zxing"):
        assert frame.payload in _texts(make_decoder(name).decode(grey)), name


@pytest.mark.parametrize("encoding,text", [
    ("latin-1", "Crème brûlée n°42, Größe L"),
    ("shift_jis", "東京駅 受取 4711"),
])
@pytest.mark.parametrize("use_zxing", [False, True])
def test_text_in_another_encoding_is_text_not_invalid_utf8(encoding: str, text: str,
                                                          use_zxing: bool) -> None:
    frame = make_variant(text, (480, 360), Variant(encoding=encoding, module_px=(5, 5)),
                         seed=3, use_zxing=use_zxing)
    codes = make_decoder("robust").decode(to_grey(frame.image))
    assert [c.text for c in codes] == [text]
    code = codes[0]
    assert code.payload != text.encode("utf-8")  # the symbol really holds other bytes
    verdict = classify(code.payload, QrPolicy(), time.time(), text=code.text)
    assert (verdict.cls, verdict.reason) == ("text", None)
    assert verdict.detail["length"] == len(text)
    # judged by its bytes alone it would be refused, as it was before
    assert classify(code.payload, QrPolicy(), time.time()).reason == "invalid-utf8"


def test_the_qr_source_classifies_a_latin1_code_as_text() -> None:
    frame = make_variant("Größe 42 Ärmel", (480, 360), Variant(encoding="latin-1"), seed=5)
    out: list[tuple[str, dict[str, Any]]] = []
    src = QrSource(Config(qr=QrConfig()), lambda t, d: out.append((t, d)),
                   decoder=make_decoder("robust"))
    src.on_frame(Grabbed(to_grey(frame.image), 1, time.time()), lambda t, d: out.append((t, d)))
    assert [(t, d["class"], d["reason"]) for t, d in out] == [("o2o.qr.scan", "text", None)]


def test_binary_payload_is_judged_by_its_bytes() -> None:
    import qrcode

    qr = qrcode.QRCode(border=4, box_size=4)
    qr.add_data(b"\x1b[2J\x1b]0;pwned\x07 order 42")  # escape codes: zxing-cpp says binary
    qr.make(fit=True)
    grey = np.array(qr.make_image().get_image().convert("L"))
    codes = make_decoder("robust").decode(grey)
    assert len(codes) == 1 and codes[0].text is None
    verdict = classify(codes[0].payload, QrPolicy(), time.time(), text=codes[0].text)
    assert verdict.reason == "control-characters"


def test_classify_limits_and_hashes_the_raw_bytes_when_given_text() -> None:
    raw = "Größe".encode("latin-1")
    as_text = classify(raw, QrPolicy(), 0.0, text="Größe")
    assert as_text.cls == "text"
    hostile = classify(raw, QrPolicy(), 0.0, text="Gr\x1b[2J")
    assert hostile.reason == "control-characters" and hostile.detail["length"] == len(raw)
    assert classify(b"x" * 3000, QrPolicy(), 0.0, text="x" * 3000).reason == "too-long"
    # a decoder that could not decode the text either (U+FFFD): the bytes decide
    assert classify(b"\xc3\x28", QrPolicy(), 0.0, text="\ufffd(").reason == "invalid-utf8"


@pytest.mark.parametrize("name", ["code128", "datamatrix"])
def test_other_barcode_kinds_are_not_taken_for_qr_codes(name: str) -> None:
    """The camera reads QR codes and product barcodes (tests/unit/qr/test_gtin.py) only;
    another kind of code in view is ignored, not misread."""
    frames = variant_set(name, 4, seed=SEED)
    assert all(f.kind == SETS[name].kind for f in frames)
    direct = sum(f.payload in [r.text for r in zxingcpp.read_barcodes(to_grey(f.image))]
                 + [d.data.decode() for d in pyzbar.decode(to_grey(f.image))] for f in frames)
    assert direct >= 3  # the frames do show a readable barcode (zbar has no DataMatrix)
    decoder = RobustDecoder()
    assert all(decoder.decode(to_grey(f.image)) == [] for f in frames)


def test_variant_frames_are_deterministic_and_dim_when_asked() -> None:
    a = variant_set("small-dim", 2, seed=9)
    b = variant_set("small-dim", 2, seed=9)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert all(30 < to_grey(f.image).mean() < 50 for f in a)
    with pytest.raises(ValueError, match="does not fit"):
        make_variant("x" * 200, (64, 64), Variant(), seed=1)
