"""What the store link needs of the uplink, built before either of them.

The store link publishes commands' answers and asks for content files through the uplink,
and the uplink hands the store link every downstream message: each needs the other at
construction. This port is made first and given to the store link; the uplink, made with the
store link's handler, is plugged in once, before anything runs."""

from __future__ import annotations

from typing import Protocol


class UplinkSide(Protocol):
    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None: ...

    def want_topics(self, topics: set[str]) -> None: ...


class UplinkPort:
    def __init__(self) -> None:
        self._uplink: UplinkSide | None = None
        self._wanted: set[str] | None = None  # asked before the uplink was plugged in

    def plug(self, uplink: UplinkSide) -> None:
        if self._uplink is not None:
            raise RuntimeError("the uplink port is already plugged")
        self._uplink = uplink
        if self._wanted is not None:
            uplink.want_topics(self._wanted)

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        if self._uplink is not None:
            self._uplink.publish_reply(topic, correlation, payload)

    def want_topics(self, topics: set[str]) -> None:
        if self._uplink is None:
            self._wanted = set(topics)
        else:
            self._uplink.want_topics(topics)
