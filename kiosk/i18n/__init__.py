"""Message catalogues: one JSON file per language in this folder (`en.json`, `de.json`, ...).

Adding a language is adding a file with the same keys as `en.json`; a key missing from a
catalogue falls back to English, so a half-translated file still works. `{name}` placeholders
are filled from keyword arguments; a placeholder without a value is left visible rather than
failing in front of a shopper. The catalogues are ours; the values put into them are data (a
first name, a price from a bundle) and go in as plain, bounded text.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiosk.errors import KioskError, KioskReason
from kiosk.safe_text import plain

HERE = Path(__file__).resolve().parent
FALLBACK = "en"


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load_catalogues(folder: Path = HERE) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KioskError(KioskReason.BAD_CATALOGUE, f"{path}: not readable JSON ({exc})") \
                from None
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise KioskError(KioskReason.BAD_CATALOGUE,
                             f"{path}: must be an object of \"key\": \"text\" pairs")
        if "language.name" not in data:
            raise KioskError(KioskReason.BAD_CATALOGUE,
                             f"{path}: needs \"language.name\" (the language in itself)")
        out[path.stem] = data
    if FALLBACK not in out:
        raise KioskError(KioskReason.BAD_CATALOGUE, f"{folder}: {FALLBACK}.json is missing")
    return out


class Translator:
    def __init__(self, catalogues: Mapping[str, Mapping[str, str]], language: str = FALLBACK):
        self.catalogues = catalogues
        self.language = language if language in catalogues else FALLBACK

    @property
    def languages(self) -> list[str]:
        """English first, then the others by code."""
        return sorted(self.catalogues, key=lambda c: (c != FALLBACK, c))

    def name(self, code: str) -> str:
        return self.catalogues[code]["language.name"]

    def __call__(self, key: str, **values: Any) -> str:
        text = self.catalogues[self.language].get(key) or self.catalogues[FALLBACK].get(key)
        if text is None:
            return key  # a missing key shows itself, so it is found and fixed
        clean = {k: plain(v) for k, v in values.items()}
        return string.Formatter().vformat(text, (), _Keep(clean))
