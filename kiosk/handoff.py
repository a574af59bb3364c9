"""The link a shopper takes away from the kiosk: the page's online address with UTM tags
saying it came from this kiosk, how the page was opened, for which campaign, in which store
and on which device (utm_content = "store/device"), and `o2o_h`, a random token that is the
id of the hand-off event itself, so web analytics can join the online session to what
happened in the store. Written as an ASCII URI (host in IDNA, the rest percent-encoded) so
that every phone's reader takes the same link from the code."""

from __future__ import annotations

import secrets
import time

from agent.contracts.links import with_tags

MEDIA = ("nfc", "qr", "touch", "beacon")
# Crockford's base32, as the agent's event ids (ULIDs)
_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_token(now: float | None = None) -> str:
    """A hand-off token: a ULID whose 80 random bits come from the system's CSPRNG (a
    guessable token would let anyone claim another shopper's hand-off)."""
    ms = int((time.time() if now is None else now) * 1000) & (2**48 - 1)
    value = ms << 80 | secrets.randbits(80)
    return "".join(_DIGITS[(value >> shift) & 31] for shift in range(125, -1, -5))


def handoff_url(link: str, medium: str, campaign: str, store: str, device: str,
                token: str = "") -> str:
    return with_tags(link, {
        "utm_source": "kiosk", "utm_medium": medium if medium in MEDIA else "touch",
        "utm_campaign": campaign, "utm_content": f"{store}/{device}", "o2o_h": token})
