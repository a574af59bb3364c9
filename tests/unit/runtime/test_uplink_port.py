"""The port between the store link and the uplink: built first, the uplink plugged in once."""

from __future__ import annotations

import pytest

from agent.services.uplink_port import UplinkPort


class FakeUplink:
    def __init__(self) -> None:
        self.replies: list[tuple[str, bytes, bytes]] = []
        self.wanted: list[set[str]] = []

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        self.replies.append((topic, correlation, payload))

    def want_topics(self, topics: set[str]) -> None:
        self.wanted.append(set(topics))


def test_replies_and_wanted_topics_reach_the_plugged_uplink() -> None:
    port, uplink = UplinkPort(), FakeUplink()
    port.plug(uplink)
    port.publish_reply("r/1", b"c", b"{}")
    port.want_topics({"o2o/v1/s/all/blob/ab"})
    assert uplink.replies == [("r/1", b"c", b"{}")]
    assert uplink.wanted == [{"o2o/v1/s/all/blob/ab"}]


def test_topics_wanted_before_the_uplink_is_plugged_are_handed_over() -> None:
    port, uplink = UplinkPort(), FakeUplink()
    port.want_topics({"t/1"})
    port.want_topics({"t/2"})
    port.publish_reply("r/1", b"", b"{}")  # no link yet: nothing to answer on
    port.plug(uplink)
    assert uplink.wanted == [{"t/2"}]
    assert uplink.replies == []


def test_a_second_uplink_is_refused() -> None:
    port = UplinkPort()
    port.plug(FakeUplink())
    with pytest.raises(RuntimeError):
        port.plug(FakeUplink())
