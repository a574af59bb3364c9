"""The link a shopper takes away from the kiosk: the page's online address with UTM tags
saying it came from this kiosk, how the page was opened, for which campaign, in which store
and on which device (utm_content = "store/device"). Written as an ASCII URI (host in IDNA,
the rest percent-encoded) so that every phone's reader takes the same link from the code."""

from __future__ import annotations

from agent.contracts.links import with_tags

MEDIA = ("nfc", "qr", "touch", "beacon")


def handoff_url(link: str, medium: str, campaign: str, store: str, device: str) -> str:
    return with_tags(link, {
        "utm_source": "kiosk", "utm_medium": medium if medium in MEDIA else "touch",
        "utm_campaign": campaign, "utm_content": f"{store}/{device}"})
