"""What each MQTT 5 PUBACK reason code means for a batch of events, and what the drain does.

The rule: a row leaves the outbox only on a success PUBACK, or as a counted, reported drop
under the one stated policy below. A refusal that is about the connection (quota, receive
window, packet id, permissions, the topic) says nothing against the events: they wait and are
sent again after a pause that grows with each refusal in a row. Only a refusal about the
message itself (too large, payload format) is narrowed down by halving the batch, and only
one event that is still refused alone is dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

RC_UNSPECIFIED: Final = 0x80
RC_IMPLEMENTATION_SPECIFIC: Final = 0x83
RC_NOT_AUTHORIZED: Final = 0x87
RC_TOPIC_INVALID: Final = 0x90
RC_PACKET_ID_IN_USE: Final = 0x91
RC_RECEIVE_MAX_EXCEEDED: Final = 0x93
RC_PACKET_TOO_LARGE: Final = 0x95
RC_QUOTA_EXCEEDED: Final = 0x97
RC_PAYLOAD_FORMAT: Final = 0x99


class Action(enum.Enum):
    ACKED = "acked"  # delete the rows
    SPLIT = "split"  # about this message: send its halves
    DROP = "drop"  # one event the broker will never take: delete it, counted and reported
    RETRY = "retry"  # about the connection: keep the rows, pause the drain, send again


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    name: str  # counter key, and the drop reason when the action is DROP
    hint: str = ""  # what a person can do about it, for status' last_error
    shrink_window: bool = False  # we had more in flight than the broker allows


_NAMES: Final[dict[int, str]] = {
    RC_UNSPECIFIED: "unspecified",
    RC_IMPLEMENTATION_SPECIFIC: "implementation_specific",
    RC_NOT_AUTHORIZED: "not_authorized",
    RC_TOPIC_INVALID: "topic_name_invalid",
    RC_PACKET_ID_IN_USE: "packet_id_in_use",
    RC_RECEIVE_MAX_EXCEEDED: "receive_maximum_exceeded",
    RC_PACKET_TOO_LARGE: "too_large",
    RC_QUOTA_EXCEEDED: "quota_exceeded",
    RC_PAYLOAD_FORMAT: "payload_format_invalid",
}

# about the message: another event in the batch could be the cause, so halve to find it
_ABOUT_THE_MESSAGE: Final = frozenset({RC_PACKET_TOO_LARGE, RC_PAYLOAD_FORMAT})

_HINTS: Final[dict[int, str]] = {
    RC_NOT_AUTHORIZED: "check the broker's ACL for this device's events topic",
    RC_TOPIC_INVALID: "check [device] store and id (they make the topic)",
    RC_QUOTA_EXCEEDED: "the broker is over its quota; retrying later",
}


def reason_name(rc: int) -> str:
    return _NAMES.get(rc, f"reason_0x{rc:02x}")


def classify(rc: int, events: int) -> Verdict:
    """The drain's answer to PUBACK reason `rc` for a message of `events` events.

    0x80 (unspecified), 0x83 (implementation specific) and codes the spec does not name are
    retried, never dropped: nothing says the events are at fault, and a stalled drain is
    reported and recoverable where a deleted event is not.
    """
    if rc < 0x80:  # 0x00 success, 0x10 no matching subscribers: the broker took it
        return Verdict(Action.ACKED, "acked")
    name = reason_name(rc)
    if rc in _ABOUT_THE_MESSAGE:
        return Verdict(Action.SPLIT if events > 1 else Action.DROP, name)
    return Verdict(Action.RETRY, name, _HINTS.get(rc, ""),
                   shrink_window=rc == RC_RECEIVE_MAX_EXCEEDED)
