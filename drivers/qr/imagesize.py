"""An image file's width and height from its header, without decoding it: a few hundred bytes
read, so a small file that declares a huge picture (a 30000x30000 PNG of 1 MB) is refused
before a decoder allocates the whole picture for it (cv2.imread has no cap of its own below
a gigapixel: ~900 MB for that file).

PNG, JPEG, GIF, BMP and WebP are read; for another format None is returned and the caller
relies on OpenCV's own pixel cap (OPENCV_IO_MAX_IMAGE_PIXELS).
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Final

JPEG_MAX_SEGMENTS: Final = 512  # APPn/COM segments before the frame header; real files: < 20
# start-of-frame markers (baseline, progressive, lossless, arithmetic...), not DHT/JPG/DAC
_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                         0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length


def image_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(width, height) declared by the image at the start of `fh`; None when its format is
    not one read here or its header is cut short or odd (the decoder then says so)."""
    head = fh.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return w, h
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])  # height < 0: rows stored top-down
        return abs(w), abs(h)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        return _webp(head)
    if head[:2] == b"\xff\xd8":
        fh.seek(2)
        return _jpeg(fh)
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":  # 24-bit width-1, height-1
        return (int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1)
    if chunk == b"VP8L" and head[20] == 0x2F:  # 14-bit width-1, height-1 after the signature
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # 14-bit sizes after the start code
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg(fh: BinaryIO) -> tuple[int, int] | None:
    """Walk the segments to the frame header (SOFn), skipping APPn, COM and tables by their
    lengths: reads a few bytes per segment, however large the EXIF data before it."""
    for _ in range(JPEG_MAX_SEGMENTS):
        b = fh.read(1)
        if b != b"\xff":
            return None
        while b == b"\xff":  # fill bytes before a marker
            b = fh.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:  # end of image before any frame
            return None
        length = fh.read(2)
        if len(length) < 2:
            return None
        (n,) = struct.unpack(">H", length)
        if marker in _SOF:
            frame = fh.read(5)  # precision, height, width
            if len(frame) < 5:
                return None
            h, w = struct.unpack(">HH", frame[1:5])
            return w, h
        if n < 2:
            return None
        fh.seek(n - 2, 1)
    return None
