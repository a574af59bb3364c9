"""Image sizes read from headers (no decoding), for the decode-qr pixel cap."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from drivers.qr.imagesize import image_size


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_sizes_of_real_files_of_each_format(fmt: str, tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("L" if fmt != "WEBP" else "RGB", (321, 123)).save(buf, fmt)
    buf.seek(0)
    assert image_size(buf) == (321, 123)


def test_webp_lossless_and_extended() -> None:
    for kwargs in ({"lossless": True}, {"exif": b"Exif\x00\x00" + b"\x00" * 64}):
        buf = io.BytesIO()
        Image.new("RGBA", (77, 55)).save(buf, "WEBP", **kwargs)
        buf.seek(0)
        assert image_size(buf) == (77, 55)


def test_a_jpeg_frame_header_after_a_large_app_segment() -> None:
    jpeg = io.BytesIO()
    Image.new("L", (40, 30)).save(jpeg, "JPEG")
    data = jpeg.getvalue()
    app = b"\xff\xe1" + struct.pack(">H", 60_002) + b"\x00" * 60_000  # EXIF-sized padding
    assert image_size(io.BytesIO(data[:2] + app + data[2:])) == (40, 30)


def test_a_header_alone_declares_its_size() -> None:
    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4
    assert image_size(io.BytesIO(png)) == (30_000, 30_000)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 30_000, 30_000, 1) + b"\x01\x11\x00"
    assert image_size(io.BytesIO(b"\xff\xd8" + sof)) == (30_000, 30_000)


@pytest.mark.parametrize("data", [b"", b"\x89PNG", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00",
                                  b"\xff\xd8\xff\xd9", b"\xff\xd8\x00\x00", b"text",
                                  b"\xff\xd8" + b"\xff\xfe\x00\x02" * 1000])
def test_cut_short_or_odd_headers_give_none(data: bytes) -> None:
    assert image_size(io.BytesIO(data)) is None
