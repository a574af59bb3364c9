"""Personal offers for opted-in app users: what a signed `offers` document holds
(agent/personal_offers.py keeps it) and what the bus's `personal-offer` op answers the kiosk.

The body of an offers document, always the whole set (a snapshot):

    {"offers": [{"subject": "app:<uuid>:<major>:<minor>", "offer": "coffee-10",
                 "campaign": "autumn", "text": {"en": "10 % off your next coffee",
                                                "de": "10 % auf Ihren nächsten Kaffee"}}]}

`subject` is the app's identifier as a consent document names it; the agent keeps the offer
under that identifier's keyed hash (agent/consent.py's key), never the identifier itself. The
text says what the offer is and never whom it is for: the kiosk shows it on a public screen.

The kiosk asks `{"op": "personal-offer", "id": <the app's identifier from a presence
event>}` and gets `{"offer": {...} | null}`: null when the app has no offer, or its consent
is withdrawn.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final, TypedDict

from agent.contracts.bus import Reply

OP: Final = "personal-offer"  # agent/contracts/bus.py Op.PERSONAL_OFFER
MAX_OFFERS: Final = 10_000  # per document: ~200 bytes each in a 2 MiB document
MAX_TEXT: Final = 200  # characters of an offer in one language: one line on the home screen
MAX_LANGUAGES: Final = 12
MAX_SUBJECT: Final = 128
OFFER_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)
LANGUAGE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", re.ASCII)


class PersonalOffer(TypedDict):
    offer: str  # the offer's id
    campaign: str
    text: dict[str, str]  # by language; English required (the fallback)


class PersonalOfferReply(Reply):
    offer: PersonalOffer | None


class OffersError(ValueError):
    """A document with problems; the message lists them with their places."""


def is_unicode(text: str) -> bool:
    """No lone surrogate (JSON's "\\ud800" escape reads as one): such a string cannot be
    hashed, stored or shown, so it is refused where it comes in."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _visible(c: str) -> bool:
    """A character that shows: not a space, not a format character (a zero-width space or
    joiner, a bidi mark, a soft hyphen)."""
    return not c.isspace() and unicodedata.category(c) != "Cf"


def _text(raw: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict) or not 1 <= len(raw) <= MAX_LANGUAGES:
        problems.append(f'{where}: must be texts by language, like {{"en": "10 % off"}}')
        return {}
    out: dict[str, str] = {}
    for lang, text in raw.items():
        if not isinstance(lang, str) or not LANGUAGE.fullmatch(lang):
            problems.append(f"{where}: {str(lang)[:20]!r} is not a language code like 'en'")
        elif not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            problems.append(f"{where}.{lang}: must be a text of 1 to {MAX_TEXT} characters")
        elif any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in text):
            problems.append(f"{where}.{lang}: contains control characters")
        elif not is_unicode(text):
            problems.append(f"{where}.{lang}: contains a lone surrogate, not Unicode text")
        elif not any(_visible(c) for c in text):
            # zero-width spaces and marks only: the kiosk's slide would say "Just for you"
            # over nothing
            problems.append(f"{where}.{lang}: has nothing to show (only spaces and "
                            "invisible characters)")
        else:
            out[lang] = text
    if out and "en" not in out:
        problems.append(f'{where}: needs an English text ("en"), the fallback')
    return out


def parse_offers(body: Any) -> list[tuple[str, PersonalOffer]]:
    """(subject, offer) of each row; OffersError naming every problem's place (up to five)."""
    if not isinstance(body, dict) or not isinstance(body.get("offers"), list):
        raise OffersError('an offers document needs {"offers": [{"subject": ..., "offer": '
                          '..., "campaign": ..., "text": {"en": ...}}]}')
    rows = body["offers"]
    if len(rows) > MAX_OFFERS:
        raise OffersError(f"offers: {len(rows)} offers, at most {MAX_OFFERS} in a document")
    out: list[tuple[str, PersonalOffer]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(rows):
        where = f"offers[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        subject, offer, campaign = raw.get("subject"), raw.get("offer"), raw.get("campaign", "")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT \
                or not is_unicode(subject):
            problems.append(f"{where}.subject: must be the app's identifier, as consent "
                            "names it")
            continue
        if subject in seen:
            problems.append(f"{where}.subject: offers[{seen[subject]}] is for it too")
            continue
        seen[subject] = i
        if not isinstance(offer, str) or not OFFER_ID.fullmatch(offer):
            problems.append(f"{where}.offer: must be lowercase letters, digits, '-' or '_'")
        if not isinstance(campaign, str) or (campaign and not OFFER_ID.fullmatch(campaign)):
            problems.append(f"{where}.campaign: must be lowercase letters, digits, '-' or '_'")
        text = _text(raw.get("text"), f"{where}.text", problems)
        if not problems:
            out.append((subject, PersonalOffer(offer=str(offer), campaign=str(campaign),
                                               text=text)))
    if problems:
        raise OffersError("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    return out
