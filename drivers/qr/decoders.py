"""QR decoders behind one interface, on greyscale frames (numpy uint8, H x W).

- `zxing`: zxing-cpp, the default;
- `zbar`: pyzbar (needs Debian's libzbar0; without it a clear error says so);
- `opencv`: OpenCV's QRCodeDetector, the last resort;
- `robust`: the project's decoder — zxing-cpp on a half-size frame first, the full frame
  next, and only for frames still unread, within a time budget, the frame again after
  changes that rescue hard frames (see RobustDecoder).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from drivers.errors import DriverError, DriverReason


@dataclass(frozen=True)
class Code:
    """One code read. `payload` is the bytes the symbol holds (what debouncing and hashes
    use); `text` is its text when the symbol is text — decoded with the character set its
    ECI declares, or the one zxing-cpp detects (a QR code's default is ISO-8859-1; Shift-JIS
    and UTF-8 are recognised) — and None for binary content, which is judged by its bytes."""

    payload: bytes
    decoder: str
    text: str | None = None
    kind: str = "QRCode"  # the symbology, by zxing-cpp's name: QRCode, EAN13, UPCA, EAN8


def text_of(payload: bytes) -> str | None:
    """The text of a payload whose decoder converts every text to UTF-8 (zbar, OpenCV)."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _zxing_codes(results: Any, text_kinds: Any, name: str) -> list[Code]:
    # Plain text mode: zxing-cpp's default (HRI) writes control characters as "<ESC>",
    # which would hide them from the classifier's control-character check
    return [Code(bytes(r.bytes), name, r.text if r.content_type in text_kinds else None,
                 r.format.name or "QRCode")
            for r in results if r.valid]


def _formats(zx: Any, qr: bool = True, linear: bool = True) -> Any:
    """QR codes and the retail product barcodes (EAN-13, UPC-A, EAN-8: drivers/qr/gtin.py).
    zxing-cpp reports a UPC-A as the EAN-13 it also is (a 0 in front): one GTIN either way."""
    f = zx.BarcodeFormat
    return zx.BarcodeFormats(((f.QRCode,) if qr else ()) + ((f.EAN13, f.UPCA, f.EAN8)
                                                            if linear else ()))


def _text_kinds(zx: Any) -> Any:
    """Content zxing-cpp decoded as text (Binary, Mixed and UnknownECI stay bytes)."""
    kinds = zx.ContentType
    return frozenset((kinds.Text, kinds.GS1, kinds.ISO15434))


class QrDecoder(Protocol):
    name: str

    def decode(self, grey: Any) -> list[Code]: ...


class ZxingDecoder:
    name = "zxing"

    def __init__(self) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self._formats = _formats(zxingcpp)
        self._text_kinds = _text_kinds(zxingcpp)

    def decode(self, grey: Any) -> list[Code]:
        grey = usable(grey)
        if grey is None:
            return []
        return _zxing_codes(self._zx.read_barcodes(grey, formats=self._formats,
                                                   text_mode=self._zx.TextMode.Plain),
                            self._text_kinds, self.name)


class ZbarDecoder:
    name = "zbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar
        except ImportError as exc:  # pyzbar raises ImportError when libzbar is missing
            raise DriverError(DriverReason.BACKEND, (
                f"the zbar decoder needs the zbar library ({exc}); install it with "
                "'apt-get install libzbar0', or use decoder = \"zxing\"")) from None
        self._zbar = pyzbar

    def decode(self, grey: Any) -> list[Code]:
        grey = usable(grey)
        if grey is None:
            return []
        z = self._zbar.ZBarSymbol
        symbols = [z.QRCODE, z.EAN13, z.UPCA, z.EAN8]
        # zbar hands over text converted to UTF-8 (its guess of the character set)
        return [Code(bytes(d.data), self.name, text_of(bytes(d.data)),
                     _ZBAR_KINDS.get(d.type, d.type))
                for d in self._zbar.decode(grey, symbols=symbols)]


_ZBAR_KINDS: Final = {"QRCODE": "QRCode"}  # zbar's names that differ from zxing-cpp's


class OpenCvDecoder:
    name = "opencv"

    def __init__(self) -> None:
        import cv2

        self._detector = cv2.QRCodeDetector()
        self._error = cv2.error

    def decode(self, grey: Any) -> list[Code]:
        grey = usable(grey)
        if grey is None:
            return []
        try:
            ok, texts, _, _ = self._detector.detectAndDecodeMulti(grey)
        except self._error:  # cv2.error on odd frames means "none found"
            return []
        except UnicodeDecodeError:  # its Python binding insists on UTF-8: a Latin-1 or
            return []               # Shift-JIS code raised out of every frame showing it
        if not ok:
            return []
        return [Code(t.encode("utf-8", "surrogateescape"), self.name,
                     text_of(t.encode("utf-8", "surrogateescape"))) for t in texts if t]


SHARPEN_AMOUNT: Final = 2.0  # unsharp mask strength; 1 and 3 read fewer small blurred codes
# larger frames are scaled down first: a phone photo (4032x3024) is decoded as it is, a
# hostile 10000x10000 image costs a resize instead of seconds per pass
MAX_SIDE: Final = 4096
# rescue passes that look for product barcodes too: the two blurs and the enlarged regions
# (small dim blurred EAN-13s: 57 % read without them, 93 % with); every rescue and two
# 45-degree turns doing so cost a frame with no code 2.5x the time (13 -> 33 ms here)
LINEAR_RESCUES: Final = 5
REGIONS_MAX: Final = 3  # textured regions enlarged per frame: bounds the cost of a busy frame


def dense_regions(cv2: Any, grey: Any,
                  most: int = REGIONS_MAX) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) around the most densely textured blobs of a frame, where a
    code too small for the full-frame attempts may be: edge strength relative to the local
    brightness (so a code in dim light counts as much as one in daylight), averaged, split
    with Otsu's threshold, kept when roughly square and filled. Works at a quarter of the
    size: about a millisecond for 640x480 here."""
    h, w = grey.shape[:2]
    if min(h, w) < 32:
        return []
    small = cv2.resize(grey, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    edges = cv2.morphologyEx(small, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    relative = edges.astype(np.float32) / (cv2.blur(small, (9, 9)).astype(np.float32) + 8)
    density = cv2.blur(relative, (5, 5))
    _, mask = cv2.threshold(np.clip(density * 255, 0, 255).astype(np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    # the density summed per blob in one pass (a mask per blob costs seconds on noise)
    sums = np.bincount(labels.ravel(), weights=density.ravel(), minlength=n)
    scored = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if min(bw, bh) < 5 or area < 0.35 * bw * bh or max(bw, bh) > 3 * min(bw, bh):
            continue
        scored.append((float(sums[i]), x * 4, y * 4, bw * 4, bh * 4))
    scored.sort(reverse=True)
    boxes: list[tuple[int, int, int, int]] = []
    for _, x, y, bw, bh in scored[:most]:
        margin = max(bw, bh) // 3 + 8  # the quiet zone and what blur spread beyond the blob
        boxes.append((max(0, x - margin), max(0, y - margin),
                      min(w, x + bw + margin), min(h, y + bh + margin)))
    return boxes


class RobustDecoder:
    """The project's decoder: cheap attempts first, costly ones only for frames that need them.

    1. zxing-cpp on the frame at half size, no rotation or inversion tries: most frames are
       read here in a fraction of a millisecond;
    2. the full-size frame (zxing-cpp's own downscaling on);
    3. within the time budget: (small crops) twice the size, flat-field correction (glare,
       dim corners), a slight blur (sensor noise, JPEG blocks, moire), adaptive
       binarisation (uneven light), local contrast equalisation.
    OpenCV's detector is not in the chain by default: on hard frames it took hundreds of
    milliseconds here and read nothing the steps above missed (`opencv_last=True` adds it).
    """

    name = "robust"

    def __init__(self, budget_ms: float = 60.0, opencv_last: bool = False) -> None:
        import cv2
        import zxingcpp

        self._cv2 = cv2
        self._zx = zxingcpp
        self._formats = _formats(zxingcpp)
        self._qr_only = _formats(zxingcpp, linear=False)
        self._linear_only = _formats(zxingcpp, qr=False)
        self._text_kinds = _text_kinds(zxingcpp)
        self.budget_s = budget_ms / 1000.0
        self._opencv = OpenCvDecoder() if opencv_last else None
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))

    def _read(self, grey: Any, downscale: bool = True, formats: Any = None) -> list[Code]:
        # inversion on in every pass: light-on-dark codes (a phone in dark mode) are common,
        # and it cost +0.03 ms on a 640x480 frame here
        return _zxing_codes(self._zx.read_barcodes(
            grey, formats=self._formats if formats is None else formats, try_rotate=False,
            try_invert=True,
            try_downscale=downscale, text_mode=self._zx.TextMode.Plain),
            self._text_kinds, self.name)

    def _flat(self, grey: Any) -> Any:
        """Flat-field correction: the frame divided by its own smooth background (estimated
        at an eighth of the size, so it is cheap), which takes out glare and dim corners."""
        cv2 = self._cv2
        h, w = grey.shape[:2]
        small = cv2.resize(grey, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        background = cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.5), (w, h),
                                interpolation=cv2.INTER_LINEAR)
        return cv2.divide(grey, background, scale=160)

    def _sharp2x(self, grey: Any) -> Any:
        """Twice the size, then an unsharp mask: modules of two or three pixels softened by
        focus or motion blur get edges zxing-cpp can binarise (on the small-dim-blurred
        set this read 18 of 30 frames where the plain 2x read 9)."""
        cv2 = self._cv2
        h, w = grey.shape[:2]
        big = cv2.resize(grey, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        return cv2.addWeighted(big, 1 + SHARPEN_AMOUNT, cv2.GaussianBlur(big, (0, 0), 3.0),
                               -SHARPEN_AMOUNT, 0)

    def _rescues(self, grey: Any) -> Any:
        """Ordered by frames rescued per millisecond on the simulator's hard sets."""
        cv2 = self._cv2
        h, w = grey.shape[:2]
        flat = self._flat(grey)
        yield cv2.GaussianBlur(flat, (0, 0), 1.0)  # glare or dim light, with noise or JPEG
        yield cv2.GaussianBlur(grey, (0, 0), 1.2)  # noise, JPEG blocks, moire
        # small codes, blurred: here, after the two above (first, they cost the camera-like
        # hard sets twice the time for the same frames read)
        if min(h, w) < 400:  # a small crop: modules of a pixel or two need more pixels
            yield self._sharp2x(grey)
        else:  # small codes in a large frame: only their regions are enlarged (cost)
            for x0, y0, x1, y1 in dense_regions(cv2, grey):
                yield self._sharp2x(grey[y0:y1, x0:x1])
        smooth = cv2.GaussianBlur(grey, (5, 5), 0)
        yield cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                    cv2.THRESH_BINARY, 51, 3)  # uneven light
        yield cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C,
                                    cv2.THRESH_BINARY, 31, 5)
        yield flat
        yield self._clahe.apply(grey)

    def _turns(self, grey: Any) -> Any:
        """A product barcode held upright: zxing-cpp reads linear codes along rows (within
        about 20 degrees of level), and its try_rotate cost every frame +4 ms here; a read
        of the transposed frame costs about a millisecond. Slanted ones (turned 45 degrees
        too) were read more often, 97 % instead of 67 %, at the cost above: not taken."""
        cv2 = self._cv2
        yield cv2.rotate(grey, cv2.ROTATE_90_CLOCKWISE)

    def decode(self, grey: Any) -> list[Code]:
        cv2 = self._cv2
        deadline = time.perf_counter() + self.budget_s
        grey = usable(grey)
        if grey is None:
            return []
        h, w = grey.shape[:2]
        if max(h, w) > MAX_SIDE:  # one pass over 10000x10000 took a second: bound it
            scale = MAX_SIDE / max(h, w)
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
            h, w = grey.shape[:2]
        if min(h, w) >= 400:
            half = cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            # QR codes only: a product barcode's bars of two or three pixels, halved, were
            # misread here (a wrong GTIN whose check digit held: 0066313995297 for
            # 4006384995297), and the full-size pass below reads them right
            found = self._read(half, downscale=False, formats=self._qr_only)
            if found:
                return found
        # zxing-cpp's own downscaling would repeat the half-size attempt: off when it was made
        found = self._read(grey, downscale=min(h, w) < 400)
        if found:
            return found
        # a quarter turn for an upright product barcode first, then the rescues: the first
        # LINEAR_RESCUES of them read both kinds, the rest QR codes only
        rescues = self._rescues(grey)
        variants = itertools.chain(
            ((v, self._linear_only) for v in self._turns(grey)),
            ((v, self._formats) for v in itertools.islice(rescues, LINEAR_RESCUES)),
            ((v, self._qr_only) for v in rescues))
        while time.perf_counter() < deadline:  # checked before a variant is made: it costs
            step = next(variants, None)
            if step is None:
                break
            found = self._read(step[0], formats=step[1])
            if found:
                return found
        if self._opencv is not None and time.perf_counter() < deadline:
            return self._opencv.decode(grey)
        return []


DECODERS = {"robust": RobustDecoder, "zxing": ZxingDecoder, "zbar": ZbarDecoder,
            "opencv": OpenCvDecoder}


def make_decoder(name: str) -> QrDecoder:
    try:
        cls = DECODERS[name]
    except KeyError:
        raise DriverError(DriverReason.BACKEND, f"unknown QR decoder {name!r}; use one of "
                          + ", ".join(sorted(DECODERS))) from None
    decoder: QrDecoder = cls()
    return decoder


def to_grey(image: Any) -> Any:
    """Frames from a camera are BGR; decoders want one channel (pyzbar reads channel 0)."""
    import cv2

    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def usable(image: Any) -> Any | None:
    """The frame as every decoder can take it (2-D uint8), or None when it has no pixels or
    no sense as an image. An empty frame (a region of interest outside the picture) made
    zxing-cpp raise ValueError and zbar ZeroDivisionError; BGR made a threshold assert."""
    import cv2

    if image.ndim not in (2, 3) or image.size == 0:
        return None
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[:, :, 0]
        elif channels in (3, 4):
            if image.dtype != np.uint8:
                image = _as_uint8(image)
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if channels == 3
                                 else cv2.COLOR_BGRA2GRAY)
        else:
            return None
    return image if image.dtype == np.uint8 else _as_uint8(image)


def _as_uint8(image: Any) -> Any:
    values = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(values, 0, 255).astype(np.uint8)
