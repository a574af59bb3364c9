"""A pure NDEF decoder: message bytes (as read from a tag) to the project's JSON records.

    {"records": [...]} with records
    {"type": "uri", "uri": ...}                 {"type": "text", "lang": ..., "text": ...}
    {"type": "smartposter", "uri": ..., "titles": {lang: text}}
    {"type": "mime", "mime_type": ..., "data_hex": ...}        {"type": "empty"}
    {"type": "unknown", "tnf": int, "record_type_hex": ..., "data_hex": ...}

Tag contents are untrusted: every length is checked against what is left before anything is
sliced, chunked records are reassembled, and anything that is not exactly right raises
`NdefError` (a `DriverError`) saying where and what. Links are returned as written; whether
one may be shown is decided later, by the payload classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.errors import DriverError, DriverReason

# NFC Forum URI RTD: the first payload byte abbreviates the scheme
URI_PREFIXES = (
    "", "http://www.", "https://www.", "http://", "https://", "tel:", "mailto:",
    "ftp://anonymous:anonymous@", "ftp://ftp.", "ftps://", "sftp://", "smb://", "nfs://",
    "ftp://", "dav://", "news:", "telnet://", "imap:", "rtsp://", "urn:", "pop:", "sip:",
    "sips:", "tftp:", "btspp://", "btl2cap://", "btgoep://", "tcpobex://", "irdaobex://",
    "file://", "urn:epc:id:", "urn:epc:tag:", "urn:epc:pat:", "urn:epc:raw:", "urn:epc:",
    "urn:nfc:",
)
TNF_EMPTY, TNF_WELL_KNOWN, TNF_MIME, TNF_ABSOLUTE_URI = 0, 1, 2, 3
TNF_EXTERNAL, TNF_UNKNOWN, TNF_UNCHANGED, TNF_RESERVED = 4, 5, 6, 7


class NdefError(DriverError):
    def __init__(self, message: str) -> None:
        super().__init__(DriverReason.BAD_NDEF, message)


@dataclass(frozen=True)
class RawRecord:
    tnf: int
    type: bytes
    id: bytes
    payload: bytes


def _fail(where: str, what: str) -> NdefError:
    return NdefError(f"{where}: {what}")


def parse_records(data: bytes, where: str = "message") -> list[RawRecord]:
    """The record layer: headers, lengths, MB/ME flags, chunks reassembled."""
    records: list[RawRecord] = []
    pos = 0
    n = len(data)
    chunk: tuple[int, bytes, bytes, list[bytes]] | None = None  # tnf, type, id, payloads
    index = 0
    ended = False
    while pos < n:
        index += 1
        at = f"{where}, record {index} (byte {pos})"
        if ended:
            raise _fail(at, "data after the record marked as the message end (ME)")
        header = data[pos]
        mb, me, cf, sr, il = (header >> 7) & 1, (header >> 6) & 1, (header >> 5) & 1, \
            (header >> 4) & 1, (header >> 3) & 1
        tnf = header & 0x07
        pos += 1
        if mb != (index == 1):
            raise _fail(at, "message-begin flag (MB) must be set on the first record only")
        need = 1 + (1 if sr else 4) + (1 if il else 0)
        if pos + need > n:
            raise _fail(at, f"header needs {need} more bytes, only {n - pos} left "
                            "(the message is cut short)")
        type_len = data[pos]
        pos += 1
        if sr:
            payload_len = data[pos]
            pos += 1
        else:
            payload_len = int.from_bytes(data[pos:pos + 4], "big")
            pos += 4
        id_len = 0
        if il:
            id_len = data[pos]
            pos += 1
        body = type_len + id_len + payload_len
        if pos + body > n:
            raise _fail(at, f"type, id and payload need {body} bytes, only {n - pos} left "
                            "(the message is cut short)")
        rtype = data[pos:pos + type_len]
        pos += type_len
        rid = data[pos:pos + id_len]
        pos += id_len
        payload = data[pos:pos + payload_len]
        pos += payload_len
        if tnf == TNF_RESERVED:
            raise _fail(at, "type name format 7 is reserved")
        if tnf == TNF_EMPTY and (type_len or id_len or payload_len):
            raise _fail(at, "an empty record (TNF 0) must have no type, id or payload")
        if chunk is None:
            if tnf == TNF_UNCHANGED:
                raise _fail(at, "a continuation chunk (TNF 6) without a first chunk")
            if cf:
                if me:
                    raise _fail(at, "a chunked record cannot end the message in its first chunk")
                chunk = (tnf, rtype, rid, [payload])
            else:
                records.append(RawRecord(tnf, rtype, rid, payload))
        else:
            if tnf != TNF_UNCHANGED or type_len or il:
                raise _fail(at, "a middle or last chunk must have TNF 6, no type and no id")
            chunk[3].append(payload)
            if not cf:
                records.append(RawRecord(chunk[0], chunk[1], chunk[2], b"".join(chunk[3])))
                chunk = None
        if me:
            if chunk is not None:
                raise _fail(at, "the message ends (ME) inside a chunked record")
            ended = True
    if n and not ended:
        raise _fail(where, "the last record is not marked as the message end (ME)")
    return records


def _utf8(raw: bytes, at: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(at, f"{what} is not valid UTF-8 (byte {exc.start})") from None


def decode_uri(payload: bytes, at: str) -> str:
    if not payload:
        raise _fail(at, "URI record with an empty payload")
    code = payload[0]
    if code >= len(URI_PREFIXES):
        raise _fail(at, f"URI prefix code 0x{code:02x} is reserved")
    return URI_PREFIXES[code] + _utf8(payload[1:], at, "URI")


def decode_text(payload: bytes, at: str) -> tuple[str, str]:
    """(language, text) of a Text record."""
    if not payload:
        raise _fail(at, "Text record with an empty payload")
    status = payload[0]
    if status & 0x40:
        raise _fail(at, "Text record status bit 6 is reserved and must be 0")
    lang_len = status & 0x3F
    if 1 + lang_len > len(payload):
        raise _fail(at, f"language code of {lang_len} bytes runs past the payload")
    lang_raw = payload[1:1 + lang_len]
    if not all(0x21 <= b < 0x7F for b in lang_raw):
        raise _fail(at, "language code is not printable ASCII")
    raw = payload[1 + lang_len:]
    if status & 0x80:
        # a byte-order mark says the order; without one it is big-endian (NFC Forum Text RTD)
        codec = "utf-16" if raw[:2] in (b"\xfe\xff", b"\xff\xfe") else "utf-16-be"
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            raise _fail(at, f"text is not valid UTF-16 (byte {exc.start})") from None
    else:
        text = _utf8(raw, at, "text")
    return lang_raw.decode("ascii"), text


def _smartposter(payload: bytes, at: str) -> dict[str, Any]:
    """Only the URI and the titles are read from the message inside: a Smart Poster nested
    in it, like icons and vendor records, is skipped, so there is no recursion to exhaust."""
    uri: str | None = None
    titles: dict[str, str] = {}
    for i, rec in enumerate(parse_records(payload, f"{at} > smart poster"), 1):
        inner = f"{at} > smart poster record {i}"
        if rec.tnf != TNF_WELL_KNOWN:
            continue  # icons (MIME), vendor extensions
        if rec.type == b"U":
            if uri is not None:
                raise _fail(inner, "a Smart Poster holds exactly one URI record, found two")
            uri = decode_uri(rec.payload, inner)
        elif rec.type == b"T":
            lang, text = decode_text(rec.payload, inner)
            titles.setdefault(lang, text)  # the first title in a language wins
    if uri is None:
        raise _fail(at, "Smart Poster without a URI record")
    return {"type": "smartposter", "uri": uri, "titles": titles}


def decode_record(rec: RawRecord, at: str) -> dict[str, Any]:
    if rec.tnf == TNF_EMPTY:
        return {"type": "empty"}
    if rec.tnf == TNF_WELL_KNOWN:
        if rec.type == b"U":
            return {"type": "uri", "uri": decode_uri(rec.payload, at)}
        if rec.type == b"T":
            lang, text = decode_text(rec.payload, at)
            return {"type": "text", "lang": lang, "text": text}
        if rec.type == b"Sp":
            return _smartposter(rec.payload, at)
    if rec.tnf == TNF_MIME:
        try:
            mime = rec.type.decode("ascii")
        except UnicodeDecodeError:
            raise _fail(at, "MIME type is not ASCII") from None
        if not mime or not mime.isprintable():
            raise _fail(at, "MIME type is empty or not printable")
        return {"type": "mime", "mime_type": mime.lower(), "data_hex": rec.payload.hex()}
    return {"type": "unknown", "tnf": rec.tnf, "record_type_hex": rec.type.hex(),
            "data_hex": rec.payload.hex()}


def decode_message(data: bytes) -> dict[str, Any]:
    """The NDEF message on a tag as {"records": [...]} (an empty tag has no records)."""
    raws = parse_records(bytes(data))
    return {"records": [decode_record(r, f"record {i}") for i, r in enumerate(raws, 1)]}
