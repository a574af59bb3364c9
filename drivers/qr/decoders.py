"""QR decoders behind one interface, on greyscale frames (numpy uint8, H x W).

- `zxing`: zxing-cpp, the default;
- `zbar`: pyzbar (needs Debian's libzbar0; without it a clear error says so);
- `opencv`: OpenCV's QRCodeDetector, the last resort;
- `robust`: the project's decoder — zxing-cpp on a half-size frame first, the full frame
  next, and only for frames still unread, within a time budget, the frame again after
  changes that rescue hard frames (see RobustDecoder).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.errors import DriverError, DriverReason


@dataclass(frozen=True)
class Code:
    payload: bytes
    decoder: str


class QrDecoder(Protocol):
    name: str

    def decode(self, grey: Any) -> list[Code]: ...


class ZxingDecoder:
    name = "zxing"

    def __init__(self) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self._formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

    def decode(self, grey: Any) -> list[Code]:
        return [Code(bytes(r.bytes), self.name)
                for r in self._zx.read_barcodes(grey, formats=self._formats) if r.valid]


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
        symbols = [self._zbar.ZBarSymbol.QRCODE]
        return [Code(bytes(d.data), self.name) for d in self._zbar.decode(grey, symbols=symbols)]


class OpenCvDecoder:
    name = "opencv"

    def __init__(self) -> None:
        import cv2

        self._detector = cv2.QRCodeDetector()
        self._error = cv2.error

    def decode(self, grey: Any) -> list[Code]:
        try:
            ok, texts, _, _ = self._detector.detectAndDecodeMulti(grey)
        except self._error:  # cv2.error on odd frames means "none found"
            return []
        if not ok:
            return []
        return [Code(t.encode("utf-8", "surrogateescape"), self.name) for t in texts if t]


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
        self._formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        self.budget_s = budget_ms / 1000.0
        self._opencv = OpenCvDecoder() if opencv_last else None
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))

    def _read(self, grey: Any, downscale: bool = True) -> list[Code]:
        return [Code(bytes(r.bytes), self.name) for r in self._zx.read_barcodes(
            grey, formats=self._formats, try_rotate=False, try_invert=False,
            try_downscale=downscale) if r.valid]

    def _flat(self, grey: Any) -> Any:
        """Flat-field correction: the frame divided by its own smooth background (estimated
        at an eighth of the size, so it is cheap), which takes out glare and dim corners."""
        cv2 = self._cv2
        h, w = grey.shape[:2]
        small = cv2.resize(grey, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        background = cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.5), (w, h),
                                interpolation=cv2.INTER_LINEAR)
        return cv2.divide(grey, background, scale=160)

    def _rescues(self, grey: Any) -> Any:
        """Ordered by frames rescued per millisecond on the simulator's hard sets."""
        cv2 = self._cv2
        h, w = grey.shape[:2]
        if min(h, w) < 400:  # a small crop: modules of a pixel or two need more pixels
            yield cv2.resize(grey, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        flat = self._flat(grey)
        yield cv2.GaussianBlur(flat, (0, 0), 1.0)  # glare or dim light, with noise or JPEG
        yield cv2.GaussianBlur(grey, (0, 0), 1.2)  # noise, JPEG blocks, moire
        smooth = cv2.GaussianBlur(grey, (5, 5), 0)
        yield cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                    cv2.THRESH_BINARY, 51, 3)  # uneven light
        yield cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C,
                                    cv2.THRESH_BINARY, 31, 5)
        yield flat
        yield self._clahe.apply(grey)

    def decode(self, grey: Any) -> list[Code]:
        cv2 = self._cv2
        deadline = time.perf_counter() + self.budget_s
        h, w = grey.shape[:2]
        if min(h, w) >= 400:
            half = cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            found = self._read(half, downscale=False)
            if found:
                return found
        # zxing-cpp's own downscaling would repeat the half-size attempt: off when it was made
        found = self._read(grey, downscale=min(h, w) < 400)
        if found:
            return found
        for variant in self._rescues(grey):
            if time.perf_counter() > deadline:
                return []
            found = self._read(variant)
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
