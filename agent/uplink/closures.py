"""What a connection the broker closed says about the messages that were in flight.

Pure bookkeeping for the drain (drain.py applies the verdicts). Brokers answer a message
they will not take in three ways, and each ends in a counted drop or a smaller batch, never
in a loop that stalls every event queued behind one:

- MQTT 5 DISCONNECT with reason 0x95 (packet too large): the largest message in flight is the
  cause. A batch of several events is sent smaller at once; a single event is dropped, counted
  as `too_large`.
- The connection closed without a word soon after sending (MQTT 3.1.1 has no other way to
  refuse; mosquitto's max_packet_size and message_size_limit do this): a batch of several
  events is sent smaller after two such closes in a row. A single event that was the largest
  message in flight is suspected: the next connections send one message at a time, so it
  goes alone, and after CLOSES_BEFORE_DROP closes in a row over it it is dropped, counted as
  `refused_by_broker` (reported upstream like every drop, and said in status' last_drop).
  A connection that lives past QUICK_DROP_S clears the suspicion: a flapping network alone
  does not cost an event.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from agent.uplink.batching import Batch

QUICK_DROP_S: Final = 5.0  # a connection closed this soon after sending: maybe our message
# closes in a row right after one event sent alone before it is dropped: once is a network
# blip, twice may be a broker restart, three times it is the event
CLOSES_BEFORE_DROP: Final = 3
SHRINK_AFTER: Final = 2  # closes in a row over a multi-event batch before sending smaller
# how paho spells MQTT 5 reason 0x95 in the link's "connection lost: ..." text
PACKET_TOO_LARGE_TEXT: Final = "Packet too large"


class Close(enum.Enum):
    NOTHING = "nothing"  # not our message's fault, as far as can be told
    SHRINK = "shrink"  # send smaller batches
    PROBE = "probe"  # one message at a time until the suspect went alone
    DROP_TOO_LARGE = "too_large"  # drop the one event (the broker said 0x95)
    DROP_REFUSED = "refused_by_broker"  # drop the one event (closed on it, again and again)


@dataclass
class CloseJudge:
    quick_drops: int = 0
    suspect: int | None = None  # rowid of a one-event message the broker may close on
    strikes: int = 0

    def acked(self) -> None:
        """A message was taken: closes before it are no longer "in a row"."""
        self.quick_drops = 0

    def judge(self, why: str, lived: float | None, biggest: Batch | None) -> Close:
        """A connection that lived `lived` seconds closed (`why`, the link's text) with
        `biggest` the largest message in flight."""
        if lived is None or biggest is None:
            return Close.NOTHING
        single = len(biggest.rowids) == 1
        if PACKET_TOO_LARGE_TEXT in why:
            self.quick_drops = 0
            return Close.DROP_TOO_LARGE if single else Close.SHRINK
        if lived > QUICK_DROP_S:
            self.suspect, self.strikes = None, 0
            return Close.NOTHING
        if not single:
            self.quick_drops += 1
            if self.quick_drops < SHRINK_AFTER:
                return Close.NOTHING
            self.quick_drops = 0
            return Close.SHRINK
        if biggest.rowids[0] != self.suspect:
            self.suspect, self.strikes = biggest.rowids[0], 0
        self.strikes += 1
        if self.strikes < CLOSES_BEFORE_DROP:
            return Close.PROBE
        self.suspect, self.strikes = None, 0
        return Close.DROP_REFUSED
