"""Links printed into QR codes: ASCII only, so every reader reads the same text.

A QR code holds bytes; a link with "café" in it is UTF-8 bytes that nothing in the symbol
labels as UTF-8 (no ECI), and zbar, for one, guesses Shift-JIS for them. An IRI turned into its
URI (RFC 3987 section 3.1: the host in IDNA, the rest percent-encoded as UTF-8) is the same link
in ASCII, which every reader and every browser takes alike.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# what RFC 3986 lets stand in a path, a query and a fragment; '%' kept so an already
# encoded link is not encoded twice
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"
_FRAGMENT_SAFE: Final = _PATH_SAFE + "?"
# a '%' that does not start an escape (two hex digits) is a percent sign of the text itself
_LONE_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _quote(part: str, safe: str) -> str:
    return quote(_LONE_PERCENT.sub("%25", part), safe=safe)


def as_uri(iri: str) -> str:
    """The link with its host in IDNA and everything else non-ASCII percent-encoded; raises
    ValueError for a host IDNA cannot write."""
    parts = urlsplit(iri)
    netloc = parts.netloc
    if not netloc.isascii():
        host = parts.hostname or ""
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"the host {host!r} cannot be written as an internet name") \
                from None
        userinfo = netloc.rpartition("@")[0]
        netloc = (quote(userinfo, safe=":%") + "@" if userinfo else "") + ascii_host
        if parts.port is not None:
            netloc += f":{parts.port}"
    return urlunsplit(parts._replace(
        netloc=netloc,
        path=_quote(parts.path, _PATH_SAFE),
        query=_quote(parts.query, _FRAGMENT_SAFE + "="),
        fragment=_quote(parts.fragment, _FRAGMENT_SAFE)))


def with_tags(url: str, tags: dict[str, str | None]) -> str:
    """The link as an ASCII URI with the given query parameters set (others kept, a parameter
    of the same name replaced; None or "" leaves it as it was)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not tags.get(k)]
    query += [(k, v) for k, v in tags.items() if v]
    return as_uri(urlunsplit(parts._replace(query=urlencode(query))))
