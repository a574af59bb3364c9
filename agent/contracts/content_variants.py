"""A/B variants of a content page, part of the manifest's contract
(agent/contracts/content_manifest.py): a page may carry

    "variants": [{"name": "a", "weight": 1},
                 {"name": "b", "weight": 3, "offer": {"en": "3 for 2"},
                  "title": {"en": "Try our autumn blend"}, "image": "img/coffee-b.png"}]

Each variant shows its own title, text, offer and picture where it has them, the page's
where it has not; the link, the campaign and what opens the page stay the page's, so the
variants of one page compete for the same hand-off. The kiosk picks one per shopper session
(weighted, kept until the session is reset) and names it on the events it records; the KPIs
count views and hand-offs per page and variant (agent/kpi_metrics.py).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypedDict

# an A/B test splits one store's shoppers: each variant needs hundreds of views before its
# interval tells it from the others, so more than four leaves every one undecided for weeks
MAX_VARIANTS: Final = 4
# weights are proportions: a ratio beyond 1000:1 is a variant nobody sees, i.e. a mistake
MAX_WEIGHT: Final = 1000
# the KPI names carry it after the page's id (agent/kpi_metrics.py _VARIANT_RE takes these)
VARIANT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)
KEYS: Final = ("name", "weight", "title", "text", "offer", "image")


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    title: dict[str, str]
    text: dict[str, str]
    offer: dict[str, str]
    image: str = ""  # a file of the bundle; "" shows the page's picture


class _Checker(Protocol):
    """What the manifest's checker lends: its problem list and its text check."""

    def fail(self, where: str, what: str) -> None: ...

    def texts(self, value: Any, where: str, required: bool = True) -> dict[str, str]: ...


def parse_variants(c: _Checker, raw: Any, where: str,
                   image_ok: Callable[[object], bool]) -> tuple[Variant, ...]:
    """A page's "variants" (None: none), each problem reported at its place."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_VARIANTS:
        c.fail(where, f"must be a list of 2 to {MAX_VARIANTS} variants, like "
                      '[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]')
        return ()
    out: list[Variant] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            c.fail(at, 'must be an object like {"name": "a", "weight": 1}')
            continue
        for key in item:
            if key not in KEYS:
                c.fail(at, f"unknown key {key!r}; use {', '.join(KEYS)}")
        name = item.get("name")
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            c.fail(f"{at}.name", "must be lowercase letters, digits, '-' or '_' (1-32)")
            continue
        if any(v.name == name for v in out):
            c.fail(f"{at}.name", f"{name!r} is used twice")
            continue
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) \
                or not math.isfinite(weight) or not 0 < weight <= MAX_WEIGHT:
            c.fail(f"{at}.weight", f"must be a number above 0, at most {MAX_WEIGHT}")
            continue
        image = item.get("image")
        if image is not None and not image_ok(image):
            c.fail(f"{at}.image", "must be a file name in the bundle, like img/coffee.png")
            continue
        out.append(Variant(
            name=name, weight=float(weight),
            title=c.texts(item.get("title"), f"{at}.title", required=False),
            text=c.texts(item.get("text"), f"{at}.text", required=False),
            offer=c.texts(item.get("offer"), f"{at}.offer", required=False),
            image=image if isinstance(image, str) else ""))
    return tuple(out)


def pick(variants: Sequence[Variant], rng: random.Random) -> Variant:
    """One variant, each as likely as its share of the weights."""
    return rng.choices(variants, weights=[v.weight for v in variants])[0]


def overrides(variant: Variant) -> Mapping[str, Any]:
    """What a variant changes of its page (the fields it has), for dataclasses.replace."""
    fields = {f.name: getattr(variant, f.name) for f in dataclasses.fields(variant)
              if f.name in ("title", "text", "offer", "image")}
    return {k: v for k, v in fields.items() if v}


# a session names at most this many pages' variants; a request with more is no kiosk's
SESSION_PAGES: Final = 64
_PAGE_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)


class SessionContext(TypedDict, total=False):
    content_version: int
    variants: dict[str, str]


def session_context(request: Mapping[str, Any]) -> SessionContext:
    """The bundle version and the session's variants ({page id: variant name}) a kiosk's
    request names, for the event that records it; what is not sane is left out (a bus
    client may send anything)."""
    out = SessionContext()
    version = request.get("content_version")
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < 2**53:
        out["content_version"] = version
    variants = request.get("variants")
    if isinstance(variants, dict) and len(variants) <= SESSION_PAGES and all(
            isinstance(k, str) and _PAGE_ID.fullmatch(k)
            and isinstance(v, str) and VARIANT_NAME.fullmatch(v) for k, v in variants.items()):
        out["variants"] = dict(variants)
    return out
