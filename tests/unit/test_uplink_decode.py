"""The uplink's PUBLISH decoder (one copy of the payload) gives what paho's own gives — the
same fields, the same MQTT 5 properties, the same MalformedPacket for a broken packet — for
MQTT 5 and 3.1.1, any QoS, any topic and payload."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.uplink.client import _decode_publish, paho_decode_publish
from tests.abuse.conftest import ABUSE

V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311


def packet(topic: bytes, qos: int, mid: int, payload: bytes, props: Properties | None) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props.pack()
    return body + payload


def outcome(decode, header: int, raw: bytes, proto: MQTTProtocolVersion) -> object:  # type: ignore[no-untyped-def]
    try:
        p = decode(header, bytearray(raw), proto)
    except MalformedPacket:
        return "malformed"
    props = None if p.properties is None else (p.properties.pack())
    return (p.dup, p.qos, p.retain, bytes(p.topic), p.mid, props, bytes(p.payload))


@ABUSE
@given(topic=st.binary(max_size=40), qos=st.integers(0, 2), mid=st.integers(1, 65535),
       payload=st.binary(max_size=300), flags=st.integers(0, 0x0F),
       response=st.text(max_size=20), corr=st.binary(max_size=20), v5=st.booleans())
def test_same_as_paho(topic: bytes, qos: int, mid: int, payload: bytes, flags: int,
                      response: str, corr: bytes, v5: bool) -> None:
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        if response:
            props.ResponseTopic = response
        if corr:
            props.CorrelationData = corr
    raw = packet(topic, qos, mid, payload, props)
    header = 0x30 | (flags & 0x09) | (qos << 1)
    proto = V5 if v5 else V311
    assert outcome(_decode_publish, header, raw, proto) == \
        outcome(paho_decode_publish, header, raw, proto)


@ABUSE
@given(raw=st.binary(max_size=60), header=st.integers(0x30, 0x3F), v5=st.booleans())
def test_broken_packets_refused_alike(raw: bytes, header: int, v5: bool) -> None:
    proto = V5 if v5 else V311
    ours = outcome(_decode_publish, header, raw, proto)
    theirs = outcome(paho_decode_publish, header, raw, proto)
    if theirs == "malformed":
        assert ours == "malformed"
    else:
        assert ours == theirs


def test_cut_short_before_the_packet_id() -> None:
    raw = struct.pack("!H", 1) + b"t" + b"\x01"  # QoS 1, one byte where the id goes
    for proto in (V5, V311):
        assert outcome(_decode_publish, 0x32, raw, proto) == "malformed"
        assert outcome(paho_decode_publish, 0x32, raw, proto) == "malformed"
