"""The content bundle's manifest — a contract between the agent (which checks a bundle
before installing it, agent/storelink/content.py) and the kiosk (which shows it,
kiosk/content.py): a directory with `manifest.json` describing what the kiosk shows.

    {"version": 7,
     "privacy_url": "https://shop.example/privacy",
     "pages": [{"id": "autumn-coffee",
                "title": {"en": "Autumn coffee", "de": "Herbstkaffee"},
                "text": {"en": "..."}, "offer": {"en": "2 for 1"}, "price": "4.90 EUR",
                "link": "https://shop.example/p/42", "campaign": "autumn",
                "open_by": {"nfc": ["04a1b2c3d4e5f6"], "qr": ["https://shop.example/p/42"],
                            "zones": ["ibeacon:<uuid>:10:1:immediate"]}}],
     "attract": ["autumn-coffee"],
     "survey": {"question": {"en": "How was your visit?"}, "scale": 5},
     "theme": {"primary": "#0b5fff", "accent": "#ffb000", "dark": true,
               "logo": "img/logo.png"},
     "pickup_board": true}

A page may name its picture (`"image": "img/coffee.png"`, a file of the bundle), and carry A/B
variants of its texts, offer and picture (`"variants"`, agent/contracts/content_variants.py);
the theme's
colours are "#RRGGBB", its logo a file of the bundle too. `pickup_board` (default false) asks
the kiosk's attract loop to show the orders ready for their checked-in shoppers, by order
number only (never a name). The pictures and the colours are checked here, so the agent
refuses before installing what the kiosk would refuse to show; the kiosk then checks the
pictures' bytes (kiosk/images.py).

Texts are per language; English is required and is what a missing translation falls back
to. Every problem is reported with its place in the manifest (`pages[2].title`), and a bundle
with any problem is refused as a whole: the kiosk keeps showing the last good one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from agent.contracts.content_variants import Variant, overrides, parse_variants
from agent.errors import AgentError, Reason


class ManifestError(AgentError):
    """A manifest with problems; the message lists them with their places."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.BAD_CONTENT, message)


MANIFEST = "manifest.json"
# names a bundle's folder holds for itself: a delivered file must not take one of them (a
# file named manifest.json would replace the manifest that was checked)
RESERVED_NAMES = frozenset({MANIFEST})
MAX_MANIFEST_BYTES = 1024 * 1024
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LANG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
# a picture's name: relative, at most four folders deep, no "..", like the bundle's file names
IMAGE_NAME = re.compile(
    r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}){0,3}", re.ASCII)
THEME_COLOURS = ("primary", "accent", "background", "surface")
_HEX = re.compile(r"#[0-9a-fA-F]{6}", re.ASCII)


def check_theme(raw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """A manifest's "theme": ({colour key: "#rrggbb", "dark": bool} or None when there is
    none, its problems as "theme.key: what")."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, ['theme: must be an object like {"primary": "#0b5fff"}']
    problems = [f"theme.{key}: unknown key; use {', '.join(THEME_COLOURS)}, dark or logo"
                for key in raw if key not in (*THEME_COLOURS, "dark", "logo")]
    values: dict[str, Any] = {}
    for key in THEME_COLOURS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            problems.append(f'theme.{key}: must be a colour like "#0b5fff"')
            continue
        values[key] = value.lower()
    dark = raw.get("dark", True)
    if not isinstance(dark, bool):
        problems.append("theme.dark: must be true or false")
        dark = True
    values["dark"] = dark
    logo = raw.get("logo")
    if logo is not None:
        if image_name_ok(logo):
            values["logo"] = logo
        else:
            problems.append("theme.logo: must be a file name in the bundle, like img/logo.png")
    return (None if problems else values), problems


def image_name_ok(name: object) -> bool:
    return (isinstance(name, str) and IMAGE_NAME.fullmatch(name) is not None
            and ".." not in name.split("/") and name.lower() not in RESERVED_NAMES)


@dataclass(frozen=True)
class Page:
    id: str
    title: dict[str, str]
    text: dict[str, str]
    offer: dict[str, str]
    price: str
    link: str
    campaign: str
    nfc: tuple[str, ...] = ()
    qr: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    image: str = ""  # a file of the bundle, "" for none
    variants: tuple[Variant, ...] = ()  # an A/B test's (content_variants.py), or none
    variant: str = ""  # the variant this page shows (with_variant), "" for the page itself

    def with_variant(self, name: str) -> Page:
        """The page as its variant `name` shows it; the page itself for a name it lacks."""
        for v in self.variants:
            if v.name == name:
                return replace(self, variant=name, **overrides(v))
        return self


@dataclass(frozen=True)
class Survey:
    question: dict[str, str]
    scale: int  # 5 (faces) or 11 (NPS 0-10)


@dataclass(frozen=True)
class Bundle:
    version: int
    pages: dict[str, Page]
    attract: tuple[str, ...]
    survey: Survey
    privacy_url: str
    source: str = ""
    by_nfc: dict[str, str] = field(default_factory=dict)
    by_qr: dict[str, str] = field(default_factory=dict)
    by_zone: dict[str, str] = field(default_factory=dict)
    pickup_board: bool = False  # the attract loop shows the "ready for pickup" board

    def page_for(self, how: str, key: str) -> Page | None:
        index = {"nfc": self.by_nfc, "qr": self.by_qr, "zone": self.by_zone}[how]
        pid = index.get(key.lower() if how == "nfc" else key)
        return self.pages.get(pid) if pid else None


def _link_key(text: str) -> str:
    """A link as the agent reports it (host + path, no query), so a scanned or tapped link
    with other UTM tags still opens its page; any other text as it is."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname:
        return f"{parts.hostname.lower()}{parts.path or '/'}"
    return text


def text_in(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts.get("en", "")


class _Check:
    """Collects problems with their place in the manifest."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def texts(self, value: Any, where: str, required: bool = True) -> dict[str, str]:
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or not value:
            self.fail(where, 'must be an object of texts by language, like {"en": "..."}')
            return {}
        out = {}
        for lang, text in value.items():
            if not isinstance(lang, str) or not _LANG.fullmatch(lang):
                self.fail(where, f"{lang!r} is not a language code like 'en' or 'pt-BR'")
            elif not isinstance(text, str) or not text.strip() or len(text) > 2000:
                self.fail(f"{where}.{lang}", "must be a text of 1 to 2000 characters")
            elif any(ord(c) < 32 and c != "\n" for c in text):
                self.fail(f"{where}.{lang}", "contains control characters")
            else:
                out[lang] = text
        if "en" not in out and value:
            self.fail(where, "needs an English text (\"en\"), the fallback for every language")
        return out

    def link(self, value: Any, where: str) -> str:
        if value in (None, ""):
            return ""
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
            self.fail(where, "must be an https:// link without user or password")
            return ""
        return str(value)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(where, "must be a list of non-empty strings")
            return ()
        return tuple(value)


def _page(c: _Check, raw: Any, where: str) -> Page | None:
    if not isinstance(raw, dict):
        c.fail(where, "must be an object")
        return None
    pid = raw.get("id")
    if not isinstance(pid, str) or not _ID.fullmatch(pid):
        c.fail(f"{where}.id", "must be lowercase letters, digits, '-' or '_' (1-64)")
        return None
    opens = raw.get("open_by") or {}
    if not isinstance(opens, dict):
        c.fail(f"{where}.open_by", 'must be an object with "nfc", "qr" and/or "zones" lists')
        opens = {}
    for key in opens:
        if key not in ("nfc", "qr", "zones"):
            c.fail(f"{where}.open_by", f"unknown key {key!r}; use nfc, qr or zones")
    price = raw.get("price", "")
    if not isinstance(price, str) or len(price) > 40:
        c.fail(f"{where}.price", "must be a short text like '4.90 EUR'")
        price = ""
    campaign = raw.get("campaign", "")
    if not isinstance(campaign, str) or (campaign and not _ID.fullmatch(campaign)):
        c.fail(f"{where}.campaign", "must be lowercase letters, digits, '-' or '_'")
        campaign = ""
    image = raw.get("image")
    if image is not None and not image_name_ok(image):
        c.fail(f"{where}.image", "must be a file name in the bundle, like img/coffee.png")
    image = image if isinstance(image, str) and image_name_ok(image) else ""
    return Page(
        id=pid, title=c.texts(raw.get("title"), f"{where}.title"),
        text=c.texts(raw.get("text"), f"{where}.text", required=False),
        offer=c.texts(raw.get("offer"), f"{where}.offer", required=False),
        price=price, link=c.link(raw.get("link"), f"{where}.link"), campaign=campaign,
        nfc=tuple(u.lower() for u in c.strings(opens.get("nfc"), f"{where}.open_by.nfc")),
        qr=c.strings(opens.get("qr"), f"{where}.open_by.qr"),
        zones=c.strings(opens.get("zones"), f"{where}.open_by.zones"), image=image,
        variants=parse_variants(c, raw.get("variants"), f"{where}.variants", image_name_ok))


def parse_manifest(data: Any, source: str = "") -> Bundle:
    c = _Check()
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: the manifest must be an object")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        c.fail("version", "must be a whole number from 1")
        version = 0
    pages: dict[str, Page] = {}
    raw_pages = data.get("pages")
    if not isinstance(raw_pages, list) or not raw_pages:
        c.fail("pages", "must be a non-empty list of pages")
        raw_pages = []
    for i, raw in enumerate(raw_pages):
        page = _page(c, raw, f"pages[{i}]")
        if page is not None:
            if page.id in pages:
                c.fail(f"pages[{i}].id", f"{page.id!r} is used twice")
            pages[page.id] = page
    attract = c.strings(data.get("attract"), "attract") or tuple(pages)[:5]
    for pid in attract:
        if pid not in pages:
            c.fail("attract", f"no page {pid!r}")
    raw_survey = data.get("survey") or {"question": {"en": "How was your visit today?"}}
    survey = Survey(question={}, scale=5)
    if not isinstance(raw_survey, dict):
        c.fail("survey", 'must be an object with "question" and "scale"')
    else:
        scale = raw_survey.get("scale", 5)
        if scale not in (5, 11):
            c.fail("survey.scale", "must be 5 (faces) or 11 (0-10, NPS)")
        survey = Survey(c.texts(raw_survey.get("question"), "survey.question"),
                        scale if scale in (5, 11) else 5)
    privacy = c.link(data.get("privacy_url"), "privacy_url")
    board = data.get("pickup_board", False)
    if not isinstance(board, bool):
        c.fail("pickup_board", "must be true or false")
    c.problems.extend(check_theme(data.get("theme"))[1])
    index: dict[str, dict[str, str]] = {"nfc": {}, "qr": {}, "zone": {}}
    for page in pages.values():
        links = tuple(_link_key(q) for q in page.qr)
        for how, keys in (("nfc", page.nfc), ("qr", links), ("zone", page.zones)):
            for key in keys:
                if key in index[how] and index[how][key] != page.id:
                    c.fail(f"pages {index[how][key]!r} and {page.id!r}",
                           f"both open on {how} {key!r}")
                index[how][key] = page.id
    if c.problems:
        shown = "; ".join(c.problems[:10]) + (" ..." if len(c.problems) > 10 else "")
        raise ManifestError(f"{source}: {shown}")
    return Bundle(version, pages, attract, survey, privacy, source,
                  index["nfc"], index["qr"], index["zone"], board is True)
