"""The camera surface against hostile and careless input: frames no camera should give
(empty, 1x1, 10000x10000, noise, the wrong type), codes built to hurt (the largest binary
QR code, bytes that are text in no character set), a region of interest outside the picture,
a decoder that fails, and image files cut short for `o2o-edge decode qr`.

What a user relies on: no exception reaches the capture loop or a terminal, a frame costs a
bounded time, and every code is answered with a class or a reason."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import qrcode
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.config import Config, QrConfig
from agent.qr_source import QrSource
from drivers.qr.camera import FrameGrabber, Grabbed
from drivers.qr.classify import QrPolicy, classify
from drivers.qr.decoders import DECODERS, Code, RobustDecoder, make_decoder
from simulators.camera_files import write_video
from simulators.qr_frames import make_frame
from tests.abuse.conftest import ABUSE
from tests.conftest import CLI, ROOT, wait_for

_rng = np.random.default_rng(15)
HOSTILE_FRAMES: dict[str, Any] = {
    "all_black": np.zeros((480, 640), np.uint8),
    "all_white": np.full((480, 640), 255, np.uint8),
    "noise": _rng.integers(0, 256, (480, 640), dtype=np.uint8),
    "checkerboard_1px": (np.indices((480, 640)).sum(axis=0) % 2 * 255).astype(np.uint8),
    "one_pixel": np.zeros((1, 1), np.uint8),
    "one_row": _rng.integers(0, 256, (1, 5000), dtype=np.uint8),
    "one_column": _rng.integers(0, 256, (5000, 1), dtype=np.uint8),
    "empty": np.zeros((0, 0), np.uint8),  # a region of interest outside the picture
    "empty_rows": np.zeros((0, 640), np.uint8),
    "bgr_not_grey": _rng.integers(0, 256, (120, 160, 3), dtype=np.uint8),
    "bgra_16bit": np.zeros((60, 80, 4), np.uint16),
    "float_nan": np.full((60, 80), np.nan),
    "bool": np.ones((60, 80), bool),
    "one_channel_3d": np.zeros((60, 80, 1), np.uint8),
    "five_channels": np.zeros((8, 8, 5), np.uint8),
    "flat_vector": np.zeros(100, np.uint8),
    "strided_view": _rng.integers(0, 256, (960, 1280), dtype=np.uint8)[::2, ::2],
}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("frame", sorted(HOSTILE_FRAMES))
def test_hostile_frames_give_no_code_and_no_exception(decoder: str, frame: str) -> None:
    started = time.monotonic()
    codes = make_decoder(decoder).decode(HOSTILE_FRAMES[frame])
    assert codes == [] and time.monotonic() - started < 5.0


@pytest.mark.parametrize("fill", ["black", "noise"])
def test_a_10000_pixel_square_frame_costs_a_bounded_time(fill: str) -> None:
    grey = (np.zeros((10_000, 10_000), np.uint8) if fill == "black"
            else np.random.default_rng(1).integers(0, 256, (10_000, 10_000), dtype=np.uint8))
    decoder = RobustDecoder()
    started = time.monotonic()
    assert decoder.decode(grey) == []
    took = time.monotonic() - started
    assert took < 6.0, f"{took:.1f} s for one frame (13 s before frames were scaled down)"


@ABUSE
@given(arrays(np.uint8, st.tuples(st.integers(0, 48), st.integers(0, 48)),
              elements=st.sampled_from([0, 1, 127, 128, 254, 255])),
       st.integers(1, 8))
def test_any_small_frame_scaled_up_decodes_without_exception(grey: Any, scale: int) -> None:
    """Blocky frames of dark and light cells look like modules and finder patterns: the
    decoders' detection paths run on them, with every transformation of the robust one."""
    if grey.size:
        grey = cv2.resize(grey, (grey.shape[1] * scale, grey.shape[0] * scale),
                          interpolation=cv2.INTER_NEAREST)
    for name in ("robust", "zxing"):
        codes = make_decoder(name).decode(grey)
        assert isinstance(codes, list) and all(isinstance(c, Code) for c in codes)


def _qr(data: bytes, box: int = 3) -> Any:
    qr = qrcode.QRCode(border=4, box_size=box, error_correction=qrcode.constants.ERROR_CORRECT_L)
    qr.add_data(data)
    qr.make(fit=True)
    return np.array(qr.make_image().get_image().convert("L"))


HOSTILE_CODES = {
    "largest_binary_code": (bytes(range(256)) * 11 + b"\x00" * 130, {"too-long"}),
    "no_text_in_any_charset": (b"\x80\x81\xfe\xff\x00\x1b[2J" * 8,
                               {"invalid-utf8", "control-characters"}),
    "shift_jis_lead_bytes_cut": ("東京".encode("shift_jis")[:-1] + b"\x1b]0;x\x07",
                                 {"invalid-utf8", "control-characters"}),
    "utf8_with_bidi_override": ("Pay \u202eenil-no\u202c".encode(), {"control-characters"}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CODES))
def test_hostile_codes_shown_to_the_camera_are_answered_with_a_reason(name: str) -> None:
    data, reasons = HOSTILE_CODES[name]
    out: list[tuple[str, dict[str, Any]]] = []
    src = QrSource(Config(qr=QrConfig()), lambda t, d: out.append((t, d)),
                   decoder=make_decoder("robust"))
    src.on_frame(Grabbed(_qr(data), 1, time.time()), lambda t, d: out.append((t, d)))
    assert len(out) == 1, f"{name}: the code was not read"
    event = out[0][1]
    assert (event["class"], event["reason"] in reasons) == ("rejected", True), event
    assert set(event) == {"class", "reason", "length", "sha256", "decode_ms", "frame_age_ms"}


@ABUSE
@given(st.binary(max_size=2400), st.one_of(st.none(), st.text(max_size=300)))
def test_classify_never_raises_whatever_a_decoder_hands_it(raw: bytes, text: str | None) -> None:
    verdict = classify(raw, QrPolicy(domains=("shop.example",)), time.time(), text=text)
    assert verdict.cls in {"pickup", "campaign", "product", "loyalty", "text", "rejected"}
    json.dumps(verdict.as_json())


class _Breaks:
    """A decoder with a bug that shows on some frames."""

    name = "breaks"

    def decode(self, grey: Any) -> list[Code]:
        if grey.shape[0] == 13:
            raise RuntimeError("a decoder bug")
        return [Code(b"Table 4", self.name, "Table 4")]


def test_a_decoder_failing_on_a_frame_is_counted_and_the_next_frame_decoded() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    src = QrSource(Config(qr=QrConfig()), lambda t, d: out.append((t, d)),
                   decoder=_Breaks())
    for shape in ((13, 13), (13, 13), (20, 20)):
        src.on_frame(Grabbed(np.zeros(shape, np.uint8), 1, time.time()),
                     lambda t, d: out.append((t, d)))
    assert src.status()["decode_errors"] == 2
    assert [d["class"] for _, d in out] == ["text"]


def test_a_region_of_interest_outside_the_picture_is_reported(tmp_path: Path) -> None:
    video = tmp_path / "counter.avi"
    write_video(video, [make_frame("Table 4", (320, 240), (), seed=k).image for k in range(20)],
                fps=30)
    grabber = FrameGrabber(str(video), roi=(1000, 1000, 200, 200), loop=True).start()
    try:
        wait_for(lambda: grabber.state == "roi-outside-frame", 20,
                 what=lambda: f"the region reported: {grabber.status()}")
        assert "320x240" in grabber.last_error and "[qr] roi" in grabber.last_error
        assert grabber.get(timeout=0.2) is None  # no empty frame reaches the decoder
    finally:
        grabber.stop()


def test_decode_qr_answers_every_file_cut_short_or_odd(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    qrcode.make("https://shop.example/p/1").save(good)
    cv2.imwrite(str(tmp_path / "good.jpg"), cv2.imread(str(good)))
    files = {}
    for name, data in (("half.png", good.read_bytes()), ("half.jpg",
                                                         (tmp_path / "good.jpg").read_bytes())):
        files[name] = tmp_path / name
        files[name].write_bytes(data[:len(data) // 2])
    files["empty.png"] = tmp_path / "empty.png"
    files["empty.png"].write_bytes(b"")
    files["text.png"] = tmp_path / "text.png"
    files["text.png"].write_text("not an image\n")
    files["huge.png"] = tmp_path / "huge.png"
    cv2.imwrite(str(files["huge.png"]), np.zeros((10_000, 10_000), np.uint8))
    files["folder"] = tmp_path
    cfg = tmp_path / "config.toml"
    cfg.write_text('[qr]\ndomains = ["shop.example"]\n')
    names = [str(p) for p in files.values()] + [str(good)]
    started = time.monotonic()
    res = subprocess.run([*CLI, "decode", "qr", *names, "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert time.monotonic() - started < 60
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["file"] for x in lines] == names  # every file answered, in order
    by_name = {Path(x["file"]).name: x for x in lines}
    for unreadable in ("half.png", "empty.png", "text.png", tmp_path.name):
        assert "cannot read it as an image" in by_name[unreadable]["error"]
    assert by_name["half.jpg"].get("codes", []) == [] or "error" in by_name["half.jpg"]
    assert "10000x10000" in by_name["huge.png"]["error"]  # 100 MP: over the cap, unread
    assert [c["class"] for c in lines[-1]["codes"]] == ["product"]  # and it went on
