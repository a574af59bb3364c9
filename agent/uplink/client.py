"""paho's client, refusing downstream messages too large for anything the agent accepts.

MQTT 5 brokers learn our limit from the Maximum Packet Size in CONNECT and do not send more.
MQTT 3.1.1 has no such property, and a broker can ignore it: paho would read the whole packet
into memory (and copy it twice more) before anyone could look at its size. Here a PUBLISH whose
announced length is over the limit is read off the socket in small chunks and thrown away, its
size counted, and answered so that the broker does not send it again (MQTT 5: PUBACK/PUBREC
0x83 "implementation specific", i.e. not accepted; 3.1.1 has no refusal: a plain PUBACK).

A PUBLISH that is taken is decoded with one copy of its payload, not paho's four (struct
unpacks and a slice of the whole packet): those copies of a 32 MiB content file held the
network thread — and so every PUBACK and PINGREQ — for ~70 ms more than reading it did. A
large one is read straight into one buffer of its size (paho appends each read to a growing
buffer: a copy more, and reallocations that held the loop 25-50 ms at a time here).

Reads are budgeted: the link's pump (pump.py) gives each turn of the event loop a number of
bytes (`read_budget`); past it a read says "would block" (paho keeps its state) and
`read_more` tells the pump to come back. Used on its own, the budget is unlimited. And reads
go ahead: paho asks the socket for a packet's first byte, then its length, then its body —
three system calls for a 4-byte PUBACK; here one asks for up to READ_AHEAD bytes and the rest
is served from memory (`buffered()` tells the pump that some is left).

And a PUBACK with a reason code MQTT 5 names only for DISCONNECT is passed on, not taken for a
protocol error: mosquitto 2.0 answers a message over its message_size_limit with PUBACK 0x95
(measured), which paho would answer by dropping the connection, again and again.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from agent.storelink.blobs import MAX_BLOB_BYTES

# the largest downstream message the agent takes is a content blob; its topic, packet id and
# properties fit in the rest
MAX_DOWNSTREAM_PACKET: Final = MAX_BLOB_BYTES + 64 * 1024
_CHUNK: Final = 64 * 1024  # bytes read per step while throwing a message away
_PREALLOCATE: Final = 256 * 1024  # a PUBLISH larger than this is read into a buffer of its size
READ_AHEAD: Final = 64 * 1024  # bytes asked of the socket for a small read
_HEAD_MAX: Final = 2 + 65535 + 2  # topic length, topic, packet id: all we keep of it
_PUBLISH: Final = 0x30
_PUBACK: Final = 0x40
_PUBREC: Final = 0x50
_RC_NOT_ACCEPTED: Final = 0x83
# the PUBACK reason codes of MQTT 5 (3.4.2.1), which paho decodes itself
_PUBACK_CODES: Final = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})


@dataclass
class _Skip:
    command: int
    left: int
    size: int
    head: bytearray = field(default_factory=bytearray)

    def take(self, data: bytes) -> None:
        self.left -= len(data)
        room = _HEAD_MAX - len(self.head)
        if room > 0:
            self.head += data[:room]


@dataclass
class _Body:
    buf: bytearray
    got: int = 0


def _fresh_in_packet() -> Any:
    # what paho resets its read state to after each packet (paho-mqtt 2.x)
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


@_packet.convert_exception
def _decode_publish(header: int, packet: bytes | bytearray,
                    protocol: MQTTProtocolVersion) -> _packet.PublishPacket:
    """paho's decode_publish (same result, same errors), copying the payload once."""
    with memoryview(packet) as view:
        if len(view) < 2:
            raise MalformedPacket("PUBLISH too short for its topic length")
        pos = 2 + int.from_bytes(view[:2], "big")
        if len(view) < pos:
            raise MalformedPacket("PUBLISH shorter than its topic")
        topic = bytes(view[2:pos])
        if protocol != MQTTProtocolVersion.MQTTv5 and not topic:
            raise MalformedPacket("topic can't be empty in MQTTv3")
        qos = (header & 0x06) >> 1
        mid = 0
        if qos > 0:
            if len(view) < pos + 2:
                raise MalformedPacket("PUBLISH shorter than its packet id")
            mid = int.from_bytes(view[pos : pos + 2], "big")
            pos += 2
        properties = None
        if protocol == MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            length, vbi = VariableByteIntegers.decode(bytes(view[pos : pos + 4]))  # type: ignore[no-untyped-call]
            properties.unpack(bytes(view[pos : pos + vbi + length]))  # type: ignore[no-untyped-call]
            pos += vbi + length
        payload = bytes(view[pos:])
    return _packet.PublishPacket(dup=bool(header & 0x08), qos=qos, retain=bool(header & 0x01),
                                 topic=topic, mid=mid, properties=properties, payload=payload)


# paho's client calls _packet.decode_publish by its module attribute at each PUBLISH
paho_decode_publish: Final = _packet.decode_publish  # kept: the tests compare the two
_packet.decode_publish = _decode_publish


class BoundedClient(mqtt.Client):
    """`on_oversized(topic, size)` is called where paho reads (the loop, with the pump) for
    each dropped message."""

    def __init__(self, *args: Any, max_incoming: int = MAX_DOWNSTREAM_PACKET,
                 on_oversized: Callable[[str, int], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_incoming = max_incoming
        self.on_oversized = on_oversized
        self._skip: _Skip | None = None
        self._body: _Body | None = None
        self.read_budget = 1 << 62  # bytes this turn may still read (see pump.py)
        self.read_more = False  # a read stopped at the budget: there may be more
        self._ahead = bytearray()  # read from the socket, not yet asked for by paho

    def buffered(self) -> bool:
        """Bytes read ahead wait: the socket may not look readable, yet there is more."""
        return bool(self._ahead)

    def reconnect(self) -> MQTTErrorCode:
        # a new socket: nothing of the old one's stream may be taken for its bytes
        self._ahead.clear()
        self._skip = self._body = None
        return super().reconnect()

    def _from_ahead(self, size: int) -> bytes:
        data = bytes(self._ahead[:size])
        del self._ahead[:size]
        return data

    def _recv(self, bufsize: int) -> bytes:
        if self._ahead:
            return self._from_ahead(bufsize)
        if self.read_budget <= 0:
            self.read_more = True
            raise BlockingIOError  # paho answers MQTT_ERR_AGAIN and keeps its state
        data = super()._sock_recv(min(max(bufsize, READ_AHEAD), self.read_budget))
        self.read_budget -= len(data)
        if len(data) <= bufsize:
            return data
        self._ahead += memoryview(data)[bufsize:]
        return data[:bufsize]

    def _recv_into(self, view: memoryview) -> int:
        if self._ahead:
            n = min(len(view), len(self._ahead))
            view[:n] = self._from_ahead(n)
            return n
        if self.read_budget <= 0:
            self.read_more = True
            raise BlockingIOError
        sock: Any = self._sock
        if sock is None:
            raise ConnectionError("no connection")
        try:
            with view[: min(len(view), self.read_budget)] as part:
                n = int(sock.recv_into(part))
        except ssl.SSLWantReadError as exc:  # as paho's own _sock_recv does
            raise BlockingIOError from exc
        except ssl.SSLWantWriteError as exc:
            self._call_socket_register_write()
            raise BlockingIOError from exc
        self.read_budget -= n
        return n

    def _sock_recv(self, bufsize: int) -> bytes:
        pkt = self._in_packet
        if (self._skip is None and self._body is None and pkt["have_remaining"]
                and not pkt["packet"] and pkt["command"] & 0xF0 == _PUBLISH
                and pkt["remaining_length"] > _PREALLOCATE):
            # paho is about to read the body: take over before a byte of it is buffered
            size = pkt["remaining_length"]
            if size > self.max_incoming:
                self._skip = _Skip(pkt["command"], size, size)
            else:
                self._body = _Body(bytearray(size))
            self.read_more = True  # the body's turn comes at once
            raise BlockingIOError  # paho answers MQTT_ERR_AGAIN and keeps its state
        return self._recv(bufsize)

    def _read_body(self, body: _Body) -> MQTTErrorCode:
        with memoryview(body.buf) as view:
            while body.got < len(view):
                try:
                    n = self._recv_into(view[body.got :])
                except BlockingIOError:
                    return MQTTErrorCode.MQTT_ERR_AGAIN
                except OSError:
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST
                if not n:
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST
                body.got += n
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()
        # all of it: paho decodes and handles the packet as if it had read it itself
        self._body = None
        self._in_packet["packet"] = body.buf
        self._in_packet["to_process"] = 0
        return super()._packet_read()

    def _packet_read(self) -> MQTTErrorCode:
        if self._body is not None:
            return self._read_body(self._body)
        skip = self._skip
        if skip is None:
            return super()._packet_read()
        for _ in range(256):  # at most 16 MiB per call: other packets get their turn
            try:
                data = self._recv(min(skip.left, _CHUNK))
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not data:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            skip.take(data)
            if skip.left <= 0:
                self._skipped(skip)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_AGAIN

    def _skipped(self, skip: _Skip) -> None:
        self._skip = None
        self._in_packet = _fresh_in_packet()
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        head = bytes(skip.head)
        tlen = int.from_bytes(head[:2], "big")
        topic = head[2 : 2 + tlen].decode("utf-8", "replace")
        qos = (skip.command & 0x06) >> 1
        if qos and len(head) >= 4 + tlen:
            (mid,) = struct.unpack("!H", head[2 + tlen : 4 + tlen])
            command = _PUBACK if qos == 1 else _PUBREC
            if self.protocol == mqtt.MQTTv5:
                packet = struct.pack("!BBHB", command, 3, mid, _RC_NOT_ACCEPTED)
                self._packet_queue(command, packet, mid, 1)
            elif qos == 1:
                self._packet_queue(command, struct.pack("!BBH", command, 2, mid), mid, 1)
        if self.on_oversized is not None:
            self.on_oversized(topic, skip.size)

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        pkt = self._in_packet["packet"]
        if (cmd != "PUBACK" or self.protocol != mqtt.MQTTv5 or len(pkt) < 3
                or pkt[2] in _PUBACK_CODES):
            return super()._handle_pubackcomp(cmd)
        (mid,) = struct.unpack("!H", pkt[:2])
        reason = ReasonCode(PacketTypes.PUBACK)
        reason.value = pkt[2]  # not a PUBACK code by the letter, but its meaning is plain
        with self._out_message_mutex:
            if mid in self._out_messages:
                props = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
                return self._do_on_publish(mid, reason, props)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
