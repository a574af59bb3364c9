"""Product images from the content bundle: a page's `"image": "img/coffee.png"` (a PNG or JPEG
file in the bundle's folder).

The name is checked like the agent checks a bundle's file names (relative, no "..", at most four
folders deep); the bytes are checked against the bundle's hashes (`.hashes.json`, written by the
agent when it installs a bundle from upstream: the hashes of the signed document) before they
are decoded — a folder given as `[kiosk] content_dir` has no hashes and is the store's own.
A file over MAX_IMAGE_BYTES or MAX_PIXELS, or one PIL cannot read, is a problem of the bundle,
reported with its place (`pages[0].image`), and the bundle is refused whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.contracts.content_manifest import image_name_ok

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_IMAGE_BYTES: Final = 4 * 1024 * 1024  # a product photo for a kiosk card; more is a mistake
MAX_PIXELS: Final = 16_000_000  # decoded size bound: a small file can declare a huge picture
KEPT_PX: Final = 320  # the longest side kept in memory: a card shows ~50 x 25 cells of it
HASHES: Final = ".hashes.json"  # written by agent/storelink/content.py with an installed bundle


def _hashes(folder: Path) -> dict[str, str] | None:
    try:
        data = json.loads((folder / HASHES).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: no file can be shown as verified
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(data, dict) else {}


def load_image(path: Path, sha256: str | None) -> Image:
    """The picture, reduced to KEPT_PX; ValueError saying what is wrong with the file."""
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
    import io

    try:
        with PILImage.open(io.BytesIO(raw)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise ValueError("must be a PNG or JPEG picture")
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} is more than {MAX_PIXELS:,} "
                                 "pixels")
            img.thumbnail((KEPT_PX, KEPT_PX))
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, PILImage.DecompressionBombError):
        raise ValueError("is not a picture PIL can read") from None


def page_images(data: Any, folder: Path) -> tuple[dict[str, Image], list[str]]:
    """Every page's image, loaded and checked: ({page id: picture}, problems)."""
    pages = data.get("pages") if isinstance(data, dict) else None
    images: dict[str, Image] = {}
    problems: list[str] = []
    hashes = _hashes(folder)
    for i, page in enumerate(pages if isinstance(pages, list) else []):
        if not isinstance(page, dict) or page.get("image") is None:
            continue
        name, where = page["image"], f"pages[{i}].image"
        if not image_name_ok(name):
            problems.append(f"{where}: must be a file name in the bundle, like img/coffee.png")
            continue
        if hashes is not None and name not in hashes:
            problems.append(f"{where}: {name} is not one of the bundle's files")
            continue
        try:
            images[str(page.get("id"))] = load_image(
                folder / name, hashes.get(name) if hashes is not None else None)
        except ValueError as exc:
            problems.append(f"{where}: {name} {exc}")
    return images, problems
