"""The uplink's counters: every refusal and every drop, for `status` and the metrics."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent.uplink.refusals import Verdict


@dataclass
class UplinkStats:
    published_batches: int = 0
    published_events: int = 0
    acked_events: int = 0
    refused_batches: int = 0  # every PUBACK with a reason code of 0x80 or more
    split_batches: int = 0
    direct_batches: int = 0  # sent from the commit as it came, without reading it back
    expired_batches: int = 0
    oversized_downstream: int = 0  # downstream messages over our limit, dropped unread
    last_ack: float | None = None
    # when the broker last refused or threw out something of ours (a refusal after the last
    # ack means nothing is getting through: doctor fails on it)
    last_refusal_at: float | None = None
    refusals: Counter[str] = field(default_factory=Counter)  # by reason name
    dropped: Counter[str] = field(default_factory=Counter)  # events deleted without success
    unreported: Counter[str] = field(default_factory=Counter)  # drops not told upstream yet

    def refused(self, verdict: Verdict) -> None:
        self.refused_batches += 1
        self.refusals[verdict.name] += 1
        self.last_refusal_at = time.time()

    def drop(self, reason: str, events: int) -> None:
        self.dropped[reason] += events
        self.unreported[reason] += events

    def take_unreported(self) -> dict[str, int]:
        out, self.unreported = dict(self.unreported), Counter()
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "published_events": self.published_events,
            "acked_events": self.acked_events,
            "split_batches": self.split_batches,
            "refused_batches": self.refused_batches,
            "refusals": dict(sorted(self.refusals.items())),
            "dropped": dict(sorted(self.dropped.items())),
            # kept for readers of the earlier status: single events refused as too large
            "rejected_too_large": self.dropped.get("too_large", 0),
            "expired_batches": self.expired_batches,
            "oversized_downstream": self.oversized_downstream,
            "last_ack": self.last_ack,
            "last_refusal_at": self.last_refusal_at,
        }
