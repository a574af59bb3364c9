"""The content bundle as the kiosk reads it: a folder with `manifest.json` (its format, with an
example, is the agent's contract: agent/contracts/content_manifest.py), the bundle's theme
(kiosk/brand.py) and its pages' pictures (kiosk/images.py).

The schema and its checks are the contract's, so the agent refuses a bundle the kiosk could
not show before installing it; this module reads a bundle's folder and reports its problems as
the kiosk's own errors. A bundle with any problem is refused as a whole: the kiosk keeps showing
the last good one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from agent.contracts import content_manifest
from agent.contracts.content_manifest import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    RESERVED_NAMES,
    Bundle,
    ManifestError,
    Page,
    Survey,
    text_in,
)
from kiosk.brand import BrandTheme, parse_theme
from kiosk.errors import KioskError, KioskReason
from kiosk.images import Picture, bundle_logo, page_images

__all__ = ["LOGO", "MANIFEST", "MAX_MANIFEST_BYTES", "RESERVED_NAMES", "Bundle", "Page", "Survey",
           "load_bundle", "load_bundle_with_look", "parse_manifest", "text_in"]


# the theme's logo among the pictures: no page id has a capital letter
LOGO: Final = "LOGO"


def parse_manifest(data: Any, source: str = "") -> Bundle:
    try:
        return content_manifest.parse_manifest(data, source)
    except ManifestError as exc:
        raise KioskError(KioskReason.BAD_CONTENT, str(exc)) from None


def load_bundle(folder: Path) -> Bundle:
    return load_bundle_with_look(folder)[0]


def load_bundle_with_look(folder: Path) -> tuple[Bundle, BrandTheme | None,
                                                dict[str, Picture]]:
    """The bundle, its "theme" (kiosk/brand.py) and its pictures (kiosk/images.py: the pages'
    by page id, the theme's logo as LOGO), refused as a whole if any is wrong."""
    path = folder / MANIFEST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KioskError(KioskReason.BAD_CONTENT, f"{path}: cannot be read ({exc.strerror})") \
            from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise KioskError(KioskReason.BAD_CONTENT, f"{path}: larger than 1 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KioskError(KioskReason.BAD_CONTENT, f"{path}: not valid JSON ({exc})") from None
    bundle = parse_manifest(data, str(path))
    theme, problems = parse_theme(data.get("theme"))
    images, image_problems = page_images(data, folder)
    if theme is not None:
        logo, logo_problems = bundle_logo(theme.logo, folder, theme.backdrop)
        image_problems += logo_problems
        if logo is not None:
            images[LOGO] = logo
    if problems or image_problems:
        raise KioskError(KioskReason.BAD_CONTENT,
                         f"{path}: {'; '.join(problems + image_problems)}")
    return bundle, theme, images
