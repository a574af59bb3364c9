"""Product images from the content bundle: a page's `"image": "img/coffee.png"` (a PNG or JPEG
file in the bundle's folder).

The name is checked like the agent checks a bundle's file names (relative, no "..", at most four
folders deep); the bytes are checked against the bundle's hashes (`.hashes.json`, written by the
agent when it installs a bundle from upstream: the hashes of the signed document) before they
are decoded — a folder given as `[kiosk] content_dir` has no hashes and is the store's own.
A file over MAX_IMAGE_BYTES or MAX_PIXELS, or one PIL cannot read, is a problem of the bundle,
reported with its place (`pages[0].image`), and the bundle is refused whole.

A checked picture is kept twice, both made from the decoded pixels (never the file's bytes):
small for the half-block drawing of a terminal, and re-encoded at up to WEB_PX for the served
page, which draws it as real pixels over the cells of its box (kiosk/web_pictures.py) — the
browser only ever decodes what PIL wrote from a verified picture.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.contracts.content_manifest import image_name_ok

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_IMAGE_BYTES: Final = 4 * 1024 * 1024  # a product photo for a kiosk card; more is a mistake
MAX_PIXELS: Final = 16_000_000  # decoded size bound: a small file can declare a huge picture
KEPT_PX: Final = 320  # the longest side kept in memory: a card shows ~50 x 25 cells of it
HASHES: Final = ".hashes.json"  # written by agent/storelink/content.py with an installed bundle
# the served page's copy: a 1080x1920 screen gives a picture ~700 px of its width; more only
# costs the kiosk memory and the websocket bytes
WEB_PX: Final = 720
WEB_JPEG_QUALITY: Final = 88  # photos; a picture with transparency (a logo) is a PNG


@dataclass(frozen=True, eq=False)
class Picture:
    """A verified picture: `image` (RGB, at most KEPT_PX) for half blocks, `web` (PNG or
    JPEG bytes, at most WEB_PX) for the served page, `key` naming `web` (its SHA-256)."""

    image: Image
    web: bytes = field(repr=False)
    mime: str
    key: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _on(img: Image, backdrop: str) -> Image:
    """RGB, what is transparent laid on `backdrop`."""
    from PIL import Image as PILImage

    rgba = img.convert("RGBA")
    flat = PILImage.new("RGB", rgba.size, backdrop)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _web_copy(img: Image, backdrop: str) -> tuple[bytes, str]:
    """The served page's copy: opaque like the half blocks it covers (a transparent part
    would let them show through), a PNG when the picture has transparency (a logo's sharp
    edges), else a JPEG."""
    copy = img.copy()
    copy.thumbnail((WEB_PX, WEB_PX))
    out = io.BytesIO()
    if copy.mode in ("RGBA", "LA", "PA") or "transparency" in copy.info:
        _on(copy, backdrop).save(out, "PNG", optimize=True)
        return out.getvalue(), "image/png"
    copy.convert("RGB").save(out, "JPEG", quality=WEB_JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"


def _hashes(folder: Path) -> dict[str, str] | None:
    try:
        data = json.loads((folder / HASHES).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: no file can be shown as verified
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(data, dict) else {}


def load_image(path: Path, sha256: str | None, backdrop: str = "#121212") -> Picture:
    """The picture (transparent parts on `backdrop` for half blocks); ValueError saying what
    is wrong with the file."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256.lower():
        raise ValueError("its bytes do not match the bundle's hash")
    try:
        with PILImage.open(io.BytesIO(raw)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise ValueError("must be a PNG or JPEG picture")
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} is more than {MAX_PIXELS:,} "
                                 "pixels")
            img.draft("RGB", (WEB_PX, WEB_PX))  # a big JPEG decodes at a fraction
            img.load()
            web, mime = _web_copy(img, backdrop)
            img.thumbnail((KEPT_PX, KEPT_PX))
            small = _on(img, backdrop)
    except (UnidentifiedImageError, OSError, PILImage.DecompressionBombError):
        raise ValueError("is not a picture PIL can read") from None
    return Picture(small, web, mime, hashlib.sha256(web).hexdigest())


def _checked(name: Any, where: str, folder: Path, hashes: dict[str, str] | None,
             backdrop: str, problems: list[str]) -> Picture | None:
    if not image_name_ok(name):
        problems.append(f"{where}: must be a file name in the bundle, like img/coffee.png")
        return None
    if hashes is not None and name not in hashes:
        problems.append(f"{where}: {name} is not one of the bundle's files")
        return None
    try:
        return load_image(folder / name, hashes.get(name) if hashes is not None else None,
                          backdrop)
    except ValueError as exc:
        problems.append(f"{where}: {name} {exc}")
        return None


def bundle_logo(name: Any, folder: Path, backdrop: str) -> tuple[Picture | None, list[str]]:
    """The theme's `"logo"` (a file of the bundle), checked like a page's picture."""
    if name is None:
        return None, []
    problems: list[str] = []
    return _checked(name, "theme.logo", folder, _hashes(folder), backdrop, problems), problems


def _pictured(page: Any, where: str) -> list[tuple[str, Any, str]]:
    """(key, file name, place) of a page's picture and its A/B variants' (their key:
    "<page id>/<variant name>", as the content card looks them up)."""
    if not isinstance(page, dict):
        return []
    pid = str(page.get("id"))
    out = [(pid, page["image"], f"{where}.image")] if page.get("image") is not None else []
    variants = page.get("variants")
    for j, v in enumerate(variants if isinstance(variants, list) else []):
        if isinstance(v, dict) and v.get("image") is not None:
            out.append((f"{pid}/{v.get('name')}", v["image"], f"{where}.variants[{j}].image"))
    return out


def page_images(data: Any, folder: Path) -> tuple[dict[str, Picture], list[str]]:
    """Every page's picture and its variants', loaded and checked: ({page id, or
    "page id/variant name": picture}, problems)."""
    pages = data.get("pages") if isinstance(data, dict) else None
    images: dict[str, Picture] = {}
    problems: list[str] = []
    hashes = _hashes(folder)
    for i, page in enumerate(pages if isinstance(pages, list) else []):
        for key, name, where in _pictured(page, f"pages[{i}]"):
            picture = _checked(name, where, folder, hashes, "#121212", problems)
            if picture is not None:
                images[key] = picture
    return images, problems
