"""The content bundle: a directory with `manifest.json` describing what the kiosk shows.

    {"version": 7,
     "privacy_url": "https://shop.example/privacy",
     "pages": [{"id": "autumn-coffee",
                "title": {"en": "Autumn coffee", "de": "Herbstkaffee"},
                "text": {"en": "..."}, "offer": {"en": "2 for 1"}, "price": "4.90 EUR",
                "link": "https://shop.example/p/42", "campaign": "autumn",
                "open_by": {"nfc": ["04a1b2c3d4e5f6"], "qr": ["https://shop.example/p/42"],
                            "zones": ["ibeacon:<uuid>:10:1:immediate"]}}],
     "attract": ["autumn-coffee"],
     "survey": {"question": {"en": "How was your visit?"}, "scale": 5}}

Texts are per language; English is required and is what a missing translation falls back
to. Every problem is reported with its place in the manifest (`pages[2].title`), and a bundle
with any problem is refused as a whole: the kiosk keeps showing the last good one.

The schema and its checks are the agent's contract (agent/contracts/content_manifest.py), so
the agent refuses a bundle the kiosk could not show before installing it; this module reads a
bundle's folder and reports its problems as the kiosk's own errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from kiosk.images import page_images

__all__ = ["MANIFEST", "MAX_MANIFEST_BYTES", "RESERVED_NAMES", "Bundle", "Page", "Survey",
           "load_bundle", "load_bundle_with_look", "parse_manifest", "text_in"]


def parse_manifest(data: Any, source: str = "") -> Bundle:
    try:
        return content_manifest.parse_manifest(data, source)
    except ManifestError as exc:
        raise KioskError(KioskReason.BAD_CONTENT, str(exc)) from None


def load_bundle(folder: Path) -> Bundle:
    return load_bundle_with_look(folder)[0]


def load_bundle_with_look(folder: Path) -> tuple[Bundle, BrandTheme | None, dict[str, Any]]:
    """The bundle, its "theme" (kiosk/brand.py) and its pages' pictures (kiosk/images.py,
    {page id: PIL image}), refused as a whole if any is wrong."""
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
    if problems or image_problems:
        raise KioskError(KioskReason.BAD_CONTENT,
                         f"{path}: {'; '.join(problems + image_problems)}")
    return bundle, theme, images
