"""The NFC source: tag reads -> `o2o.nfc.tap` events.

What a tap event says (and does not):
- the tag: a registered shelf tag or loyalty card by its UID and label; any other tag or card
  (a shopper's bank card tapped by mistake, a transit card) only by a keyed hash of its UID
  under a salt that lives in memory and changes every UTC day;
- its NDEF records, decoded, with every link and text judged by the same classifier as QR
  codes: a link that is not allowlisted, or a text with control characters, arrives as its
  class and reason only, never as something the kiosk could render or follow;
- a malformed message or an interrupted read as a reason, with the tap still counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from agent.config import Config
from agent.contracts.events import NFC_TAP, NfcTap
from agent.contracts.status import DriverStatus, NfcStatus
from agent.presence.anonymous import DailySalt
from agent.qr_policy import qr_policy
from drivers.nfc.ndef import NdefError, decode_message
from drivers.nfc.reader import TagRead, TagReader
from drivers.qr.classify import QrPolicy, classify

Emit = Callable[[str, Any], object]


def registry(entries: list[str], kind: str) -> dict[str, tuple[str, str]]:
    """{"04a1..": (kind, label)} from config entries "UIDHEX" or "UIDHEX=label"."""
    out: dict[str, tuple[str, str]] = {}
    for entry in entries:
        uid, _, label = entry.partition("=")
        out[uid.lower()] = (kind, label)
    return out


def judge_records(records: list[dict[str, Any]], policy: QrPolicy,
                  now: float) -> list[dict[str, Any]]:
    """Records with each link and text classified; hostile content replaced by its reason."""
    out = []
    for rec in records:
        kind = rec["type"]
        if kind in ("uri", "smartposter"):
            verdict = classify(rec["uri"], policy, now)
            judged = {**rec, **verdict.as_json()}
            if verdict.cls == "rejected":
                del judged["uri"]
                judged.pop("titles", None)
            elif kind == "smartposter":
                judged["titles"] = {lang: t for lang, t in rec["titles"].items()
                                    if classify(t, policy, now).cls != "rejected"}
            out.append(judged)
        elif kind == "text":
            verdict = classify(rec["text"], policy, now)
            if verdict.cls == "rejected":
                out.append({"type": "text", "lang": rec["lang"], **verdict.as_json()})
            else:
                out.append(rec)
        else:
            out.append(rec)
    return out


class NfcSource:
    def __init__(self, cfg: Config, reader: TagReader, emit: Emit,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.reader = reader
        self.emit = emit
        self.clock = clock
        self.policy = qr_policy(cfg)
        self.registered = {**registry(cfg.nfc.shelf_tags, "shelf"),
                           **registry(cfg.nfc.loyalty_cards, "loyalty")}
        self.salt = DailySalt(clock)
        self.counts = {"taps": 0, "malformed_ndef": 0, "incomplete": 0, "hostile_records": 0}

    def status(self) -> NfcStatus:
        c = self.counts
        # the driver's part is its own dict (drivers know nothing of the agent's contracts)
        return {"reader": cast(DriverStatus, self.reader.status()), "taps": c["taps"],
                "malformed_ndef": c["malformed_ndef"], "incomplete": c["incomplete"],
                "hostile_records": c["hostile_records"]}

    async def run(self) -> None:
        await self.reader.run(self.on_tap)

    def tag_identity(self, uid: bytes) -> dict[str, str]:
        known = self.registered.get(uid.hex())
        if known is not None:
            kind, label = known
            return {"id": uid.hex(), "kind": kind, **({"label": label} if label else {})}
        return {"id": "anon:" + self.salt.pseudonym(uid.hex()), "kind": "unregistered"}

    def on_tap(self, read: TagRead) -> None:
        self.counts["taps"] += 1
        data: NfcTap = {
            "tag": self.tag_identity(read.uid),
            "tag_type": read.tag_type,
            "product": read.product,
            "records": [],
            "ndef": "none",
            "read_ms": round(read.read_s * 1000, 1),
        }
        if read.error:
            self.counts["incomplete"] += 1
            data["ndef"], data["reason"] = "incomplete", read.error
        elif read.ndef == b"":
            data["ndef"] = "empty"  # formatted, nothing written yet
        elif read.ndef is not None:
            try:
                decoded = decode_message(read.ndef)["records"]
            except NdefError as exc:
                self.counts["malformed_ndef"] += 1
                data["ndef"], data["reason"] = "malformed", str(exc)
                data["ndef_bytes"] = len(read.ndef)
            else:
                records = judge_records(decoded, self.policy, self.clock())
                self.counts["hostile_records"] += sum(r.get("class") == "rejected"
                                                      for r in records)
                data["ndef"], data["records"] = "ok", records
        self.emit(NFC_TAP, data)
