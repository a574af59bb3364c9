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
    kind: str = "QRCode"  # zxing-cpp's name of the symbology shown


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


# --- variants beyond the camera-like sets: encodings, inversion, small/dim/blurred, kinds ---

SUPERSAMPLE = 4  # codes are drawn 4x larger and averaged down, as a sensor integrates light


@dataclass(frozen=True)
class Variant:
    """How a code is drawn and spoiled. Ranges are (low, high), drawn per frame."""

    encoding: str = "utf-8"  # the bytes a QR code holds, with no ECI ("latin-1", "shift_jis")
    kind: str = "QRCode"  # or a zxing-cpp writer format: "EAN13", "Code128", "DataMatrix"
    writer: str = "mixed"  # "qrcode", "zxing", or "mixed" (alternating per frame)
    inverted: bool = False  # light modules on a dark ground (a phone in dark mode)
    module_px: tuple[float, float] = (4.0, 7.0)  # one module's side in the frame, in pixels
    mean: tuple[float, float] | None = None  # the frame's mean brightness (dim light: ~40)
    blur: tuple[float, float] = (0.0, 0.0)  # Gaussian sigma (focus, motion, a cheap lens)
    noise: tuple[float, float] = (0.0, 0.0)  # sensor noise sigma, grey levels
    jpeg: tuple[int, int] | None = None  # JPEG quality
    texts: str = ""  # the _TEXTS list to draw from, when not the encoding's or the kind's
    any_angle: bool = False  # a linear barcode at any angle, not within 12 degrees of level


_TEXTS = {
    "utf-8": ["https://shop.example/p/{n}?utm_source=qr&utm_campaign=spring-{n}",
              "O2OP1:{n}AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHHIIIIJJJJ", "LOY{n:010d}",
              "Table {n} - ask our staff for help with your order, thank you"],
    "latin-1": ["Crème brûlée n°{n}", "Größe {n} Ärmel", "Niño {n} ¿listo?",
                "Ørsted {n} Æble façade"],
    "shift_jis": ["東京駅 受取 {n}", "注文番号{n}", "ポイントカード {n}",
                  "ご来店ありがとうございます {n}"],
    "EAN13": ["400638{n:06d}"], "Code128": ["LOY{n:010d}"],
    "UPCA": ["03600{n:06d}"], "EAN8": ["9{n:06d}"],
    # GS1 Digital Link URIs ({g}: a GTIN-14 with its check digit)
    "gs1-dl": ["https://id.gs1.org/01/{g}", "https://id.gs1.org/01/{g}/10/LOT{n}/21/S{n}",
               "https://brand.example/shop/01/{g}?17=271231&linkType=gs1:pip",
               "https://id.gs1.org/01/{g}/22/2A/10/AB%2F{n}"],
    "DataMatrix": ["O2O order {n}", "Größe {n}"],
}
SETS: dict[str, Variant] = {
    "inverted": Variant(inverted=True, blur=(0.0, 1.0), noise=(0.0, 8.0)),
    "latin1": Variant(encoding="latin-1", blur=(0.0, 1.0), noise=(0.0, 8.0)),
    "shift-jis": Variant(encoding="shift_jis", blur=(0.0, 1.0), noise=(0.0, 8.0)),
    "small-dim": Variant(module_px=(2.0, 2.6), mean=(36.0, 44.0), noise=(2.0, 5.0)),
    # a Gaussian of sigma 1.5-2 leaves 0.7-6 % of the contrast of 2-px modules: nothing
    # reads that (measured: 0 of 20 for zxing-cpp and zbar), so blurred codes are 3-4 px
    "small-dim-blurred": Variant(module_px=(3.0, 4.0), mean=(36.0, 44.0), blur=(1.5, 2.0),
                                 noise=(2.0, 5.0)),
    "inverted-small-dim": Variant(inverted=True, module_px=(2.2, 3.0), mean=(36.0, 44.0),
                                  blur=(0.8, 1.5), noise=(2.0, 6.0)),
    "latin1-blurred-jpeg": Variant(encoding="latin-1", module_px=(2.5, 4.0), blur=(1.0, 1.8),
                                   noise=(4.0, 10.0), jpeg=(40, 70)),
    "shift-jis-dim-noisy": Variant(encoding="shift_jis", module_px=(3.0, 5.0), mean=(36.0, 50.0),
                                   noise=(6.0, 14.0)),
    "ean13": Variant(kind="EAN13", writer="zxing", module_px=(2.0, 3.0), blur=(0.0, 1.0)),
    "code128": Variant(kind="Code128", writer="zxing", module_px=(1.8, 2.6), blur=(0.0, 1.0)),
    "datamatrix": Variant(kind="DataMatrix", writer="zxing", module_px=(3.0, 5.0),
                          blur=(0.0, 1.0)),
    "upca": Variant(kind="UPCA", writer="zxing", module_px=(2.0, 3.0), blur=(0.0, 1.0)),
    "ean8": Variant(kind="EAN8", writer="zxing", module_px=(2.0, 3.0), blur=(0.0, 1.0)),
    "ean13-rotated": Variant(kind="EAN13", writer="zxing", module_px=(2.0, 3.0),
                             blur=(0.0, 1.0), any_angle=True),
    "ean13-small-dim-blurred": Variant(kind="EAN13", writer="zxing", module_px=(1.6, 2.0),
                                       mean=(36.0, 44.0), blur=(0.6, 1.0), noise=(2.0, 5.0)),
    "gs1-dl": Variant(texts="gs1-dl", blur=(0.0, 1.0), noise=(0.0, 8.0)),
    "gs1-dl-small-dim": Variant(texts="gs1-dl", module_px=(2.2, 2.8), mean=(36.0, 44.0),
                                noise=(2.0, 5.0)),
}
LINEAR = ("EAN13", "UPCA", "EAN8", "Code128")


def _modules(text: str, v: Variant, use_zxing: bool) -> Any:
    """The code at one pixel per module, quiet zone included, dark on light (uint8)."""
    if not use_zxing:
        qr = qrcode.QRCode(border=4, box_size=1,
                           error_correction=qrcode.constants.ERROR_CORRECT_M)
        qr.add_data(text.encode(v.encoding))  # bytes: byte mode, no ECI, as many printers do
        qr.make(fit=True)
        return np.array(qr.make_image().get_image().convert("L"))
    import zxingcpp

    # zxing-cpp's writer picks the character set (and an ECI when it needs one) itself
    barcode = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, v.kind))
    return np.array(zxingcpp.write_barcode_to_image(barcode, scale=1))


def make_variant(text: str, size: tuple[int, int], v: Variant, seed: int,
                 use_zxing: bool = False) -> Frame:
    """One frame of `size` (w, h) showing `text` drawn and spoiled as `v` says, at any angle
    (a linear barcode within 12 degrees of level, as a hand holds a card to a camera)."""
    rng = np.random.default_rng(seed)
    w, h = size
    s = SUPERSAMPLE
    code = _modules(text, v, use_zxing or v.kind != "QRCode")
    if v.inverted:
        code = 255 - code
    module = rng.uniform(*v.module_px)
    ch, cw = code.shape
    big = cv2.resize(code, (round(cw * module * s), round(ch * module * s)),
                     interpolation=cv2.INTER_NEAREST)
    linear = v.kind in LINEAR and not v.any_angle
    angle = rng.uniform(-12, 12) if linear else rng.uniform(0, 360)
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    bh, bw = big.shape[0] / s, big.shape[1] / s
    rx, ry = (bw * cos + bh * sin) / 2 + 2, (bw * sin + bh * cos) / 2 + 2  # rotated extent
    if 2 * rx >= w or 2 * ry >= h:
        raise ValueError(f"a {cw}x{ch}-module code at {module:.1f} px does not fit {w}x{h}")
    cx, cy = rng.uniform(rx, w - rx), rng.uniform(ry, h - ry)
    m = cv2.getRotationMatrix2D((big.shape[1] / 2, big.shape[0] / 2), angle, 1.0)
    m[:, 2] += (cx * s - big.shape[1] / 2, cy * s - big.shape[0] / 2)
    canvas = (w * s, h * s)
    drawn = cv2.resize(cv2.warpAffine(big, m, canvas, flags=cv2.INTER_LINEAR),
                       size, interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(cv2.warpAffine(np.full(big.shape, 255, np.uint8), m, canvas),
                       size, interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    img = _background(rng, h, w).astype(np.float32) * (1 - alpha) + drawn[..., None] * alpha
    effects = [v.kind, v.encoding, f"module{module:.1f}px", f"angle{angle:.0f}"]
    if v.inverted:
        effects.append("inverted")
    if v.blur[1] > 0:
        sigma = rng.uniform(*v.blur)
        img = cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.05 else img
        effects.append(f"blur{sigma:.1f}")
    if v.mean is not None:
        target = rng.uniform(*v.mean)
        img = img * (target / max(1.0, float(img.mean())))
        effects.append(f"mean{target:.0f}")
    if v.noise[1] > 0:
        sigma = rng.uniform(*v.noise)
        img = img + rng.normal(0, sigma, img.shape)
        effects.append(f"noise{sigma:.0f}")
    frame = np.clip(img, 0, 255).astype(np.uint8)
    if v.jpeg is not None:
        quality = int(rng.integers(v.jpeg[0], v.jpeg[1] + 1))
        _, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        effects.append(f"jpeg{quality}")
    return Frame(frame, text, tuple(effects), v.kind)


def _ean_check_digit(digits: str) -> str:
    """GS1's check digit: weights 3 and 1 alternating from the right (any GTIN length)."""
    total = sum(int(d) * (1 if i % 2 else 3) for i, d in enumerate(reversed(digits)))
    return str(-total % 10)


def variant_set(name: str, n: int, size: tuple[int, int] = (640, 480),
                seed: int = 0) -> list[Frame]:
    """`n` frames of the named set (see SETS); payloads differ per frame, writers alternate
    between qrcode and zxing-cpp's when the set says "mixed"."""
    v = SETS[name]
    texts = _TEXTS[v.texts or (v.encoding if v.kind == "QRCode" else v.kind)]
    rnd = random.Random(seed)  # noqa: S311 - simulation
    frames = []
    for i in range(n):
        n_ = rnd.randrange(10**5, 10**6)
        gtin = f"0400638{n_:06d}"
        text = texts[i % len(texts)].format(n=n_, g=gtin + _ean_check_digit(gtin))
        if v.kind in ("EAN13", "UPCA", "EAN8"):
            text += _ean_check_digit(text)
        use_zxing = v.writer == "zxing" or (v.writer == "mixed" and i % 2 == 1)
        frames.append(make_variant(text, size, v, seed * 100_003 + i, use_zxing))
    return frames
