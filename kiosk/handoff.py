"""The link a shopper takes away from the kiosk: the page's online address with UTM tags
saying it came from this kiosk, how the page was opened, for which campaign, in which store
and on which device (utm_content = "store/device")."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MEDIA = ("nfc", "qr", "touch", "beacon")


def handoff_url(link: str, medium: str, campaign: str, store: str, device: str) -> str:
    parts = urlsplit(link)
    tags = {"utm_source": "kiosk", "utm_medium": medium if medium in MEDIA else "touch",
            "utm_campaign": campaign, "utm_content": f"{store}/{device}"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in tags] + [(k, v) for k, v in tags.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))
