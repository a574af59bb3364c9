"""QR decoders behind one interface, on greyscale frames (numpy uint8, H x W).

- `zxing`: zxing-cpp, the default;
- `zbar`: pyzbar (needs Debian's libzbar0; without it a clear error says so);
- `opencv`: OpenCV's QRCodeDetector, the last resort;
- `robust`: the project's decoder — zxing-cpp on the frame, then, only when nothing was
  found and within a time budget, the same frame again after changes that rescue hard
  frames (contrast equalisation for dim light and glare, a scale change, binarisation),
  and OpenCV last.
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
    """zxing-cpp first; retries only for frames where it found nothing."""

    name = "robust"

    def __init__(self, budget_ms: float = 60.0) -> None:
        import cv2

        self._cv2 = cv2
        self.budget_s = budget_ms / 1000.0
        self._zxing = ZxingDecoder()
        self._opencv = OpenCvDecoder()
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))

    def _variants(self, grey: Any) -> Any:
        cv2 = self._cv2
        yield self._clahe.apply(grey)  # dim light, glare: local contrast back
        h, w = grey.shape[:2]
        if max(h, w) > 1000:
            yield cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        else:
            yield cv2.resize(grey, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)  # small codes
        blurred = cv2.GaussianBlur(grey, (5, 5), 0)
        yield cv2.adaptiveThreshold(blurred, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C,
                                    cv2.THRESH_BINARY, 31, 5)
        sharp = cv2.addWeighted(grey, 1.8, cv2.GaussianBlur(grey, (0, 0), 3), -0.8, 0)
        yield sharp  # motion or focus blur

    def decode(self, grey: Any) -> list[Code]:
        found = self._zxing.decode(grey)
        if found:
            return found
        deadline = time.perf_counter() + self.budget_s
        for variant in self._variants(grey):
            found = self._zxing.decode(variant)
            if found or time.perf_counter() > deadline:
                return found
        return self._opencv.decode(grey)


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
