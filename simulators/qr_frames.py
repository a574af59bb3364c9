"""Camera-like frames with QR codes in them, with the payload each one holds: codes drawn
with qrcode, placed on a cluttered background at a size and angle, seen in perspective, and
spoiled the way a shop's camera spoils them (blur, sensor noise, dim light, glare, JPEG).

Deterministic for a seed, so tests and benchmarks can compare decoders on the same set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import qrcode

EFFECTS = ("perspective", "blur", "noise", "dim", "glare", "jpeg")


@dataclass(frozen=True)
class Frame:
    image: Any  # BGR uint8, H x W x 3
    payload: str
    effects: tuple[str, ...]


def _code(text: str) -> Any:
    qr = qrcode.QRCode(border=4, box_size=10, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    return np.array(qr.make_image().get_image().convert("L"))


def _background(rng: np.random.Generator, h: int, w: int) -> Any:
    """A shelf-ish background: smooth colour gradients and some boxes, not a white page."""
    base = rng.uniform(60, 200, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] + 40 * np.sin(xx / rng.uniform(80, 300) + c) \
            + 30 * np.cos(yy / rng.uniform(80, 300))
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 3))
        cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) for v in rng.uniform(0, 255, 3)),
                      -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_frame(payload: str, size: tuple[int, int], effects: tuple[str, ...],
               seed: int) -> Frame:
    """One frame of `size` (w, h) showing `payload` with the given effects."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = _background(rng, h, w)
    code = cv2.cvtColor(_code(payload), cv2.COLOR_GRAY2BGR)
    side = int(min(w, h) * rng.uniform(0.3, 0.55))
    code = cv2.resize(code, (side, side), interpolation=cv2.INTER_AREA)
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float32)
    # the whole code stays in the frame, turned and skewed: half its diagonal plus jitter
    margin = side * 0.85
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    angle = rng.uniform(0, 2 * np.pi)
    corners = []
    for k in range(4):
        a = angle + k * np.pi / 2 + np.pi / 4
        r = side / np.sqrt(2)
        jitter = rng.uniform(-0.12, 0.12, 2) * side if "perspective" in effects else (0, 0)
        corners.append([cx + r * np.cos(a) + jitter[0], cy + r * np.sin(a) + jitter[1]])
    m = cv2.getPerspectiveTransform(src, np.array(corners, dtype=np.float32))
    warped = cv2.warpPerspective(code, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((side, side), 255, np.uint8), m, (w, h))
    img[mask > 0] = warped[mask > 0]
    out = img.astype(np.float32)
    if "dim" in effects:
        out = out * rng.uniform(0.15, 0.3)
    if "glare" in effects:
        yy, xx = np.mgrid[0:h, 0:w]
        gx, gy = cx + rng.uniform(-0.3, 0.3) * side, cy + rng.uniform(-0.3, 0.3) * side
        s = side * rng.uniform(0.12, 0.25)
        spot = np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * s * s)))
        out = out * 0.8 + 230 * spot[..., None]
    if "blur" in effects:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(1.0, 2.2) * side / 300)
    if "noise" in effects:
        out = out + rng.normal(0, rng.uniform(8, 18), out.shape)
    frame = np.clip(out, 0, 255).astype(np.uint8)
    if "jpeg" in effects:
        quality = int(rng.integers(35, 60))
        _, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return Frame(frame, payload, effects)


def frame_set(n: int, size: tuple[int, int], hard: bool, seed: int = 0) -> list[Frame]:
    """`n` frames; the hard set has perspective and two or three spoilers on every frame."""
    rnd = random.Random(seed)  # noqa: S311 - simulation
    payloads = ["https://shop.example/p/{}?utm_source=qr", "O2OP1:{}AAAABBBBCCCCDDDD",
                "LOY{:010d}", "Table {} - ask for help"]
    frames = []
    for i in range(n):
        payload = payloads[i % len(payloads)].format(rnd.randrange(10**6, 10**7))
        if hard:
            effects = ("perspective", *rnd.sample(EFFECTS[1:], rnd.choice((2, 3))))
        else:
            effects = tuple(e for e in EFFECTS if rnd.random() < 0.25)
        frames.append(make_frame(payload, size, effects, seed * 100_003 + i))
    return frames
