"""NDEF encoding for what staff write to tags (a URI, or a Smart Poster with titles) and for
the simulators' tags. The inverse of drivers/nfc/ndef.py for the record kinds it makes."""

from __future__ import annotations

from drivers.nfc.ndef import TNF_WELL_KNOWN, URI_PREFIXES

# longest first, so "https://www." wins over "https://"
_BY_LENGTH = sorted(((p, i) for i, p in enumerate(URI_PREFIXES) if p), key=lambda x: -len(x[0]))


def record(tnf: int, rtype: bytes, payload: bytes, *, first: bool, last: bool,
           rid: bytes = b"") -> bytes:
    """One record; the short form when the payload fits in a byte."""
    short = len(payload) < 256
    header = (0x80 if first else 0) | (0x40 if last else 0) | (0x10 if short else 0) \
        | (0x08 if rid else 0) | tnf
    out = bytearray([header, len(rtype)])
    out += bytes([len(payload)]) if short else len(payload).to_bytes(4, "big")
    if rid:
        out.append(len(rid))
    return bytes(out + rtype + rid + payload)


def message(records: list[tuple[int, bytes, bytes]]) -> bytes:
    """(tnf, type, payload) records as one message."""
    last = len(records) - 1
    return b"".join(record(tnf, t, p, first=i == 0, last=i == last)
                    for i, (tnf, t, p) in enumerate(records))


def uri_payload(uri: str) -> bytes:
    for prefix, code in _BY_LENGTH:
        if uri.startswith(prefix):
            return bytes([code]) + uri[len(prefix):].encode()
    return b"\x00" + uri.encode()


def text_payload(text: str, lang: str = "en") -> bytes:
    code = lang.encode("ascii")
    if not 0 < len(code) < 64:
        raise ValueError("a language code is 1 to 63 ASCII characters")
    return bytes([len(code)]) + code + text.encode()


def uri_message(uri: str) -> bytes:
    return message([(TNF_WELL_KNOWN, b"U", uri_payload(uri))])


def smartposter_message(uri: str, titles: dict[str, str] | None = None) -> bytes:
    inner = [(TNF_WELL_KNOWN, b"U", uri_payload(uri))]
    inner += [(TNF_WELL_KNOWN, b"T", text_payload(t, lang)) for lang, t in (titles or {}).items()]
    return message([(TNF_WELL_KNOWN, b"Sp", message(inner))])
