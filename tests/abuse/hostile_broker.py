"""A small hostile MQTT broker (5 and 3.1.1) on 127.0.0.1: it answers each PUBLISH with the
reason code a test chooses, can close the connection instead, refuse every CONNECT, and send
a downstream PUBLISH of any size. It keeps what a test checks: which events it acknowledged
with success, which it refused, each CONNECT's properties and will.

Runs its asyncio loop in a thread of its own, so tests stay plain synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DROP = "drop"  # an answer: close the connection instead of a PUBACK
IGNORE = "ignore"  # an answer: never acknowledge
DISCONNECT_TOO_LARGE = "disconnect-0x95"  # an answer: MQTT 5 DISCONNECT "packet too large"

# property id -> wire type (MQTT 5, 2.2.2.2)
_BYTE, _TWO, _FOUR, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPS = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _FOUR,
    0x12: _STR, 0x13: _TWO, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _FOUR, 0x19: _BYTE,
    0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _TWO, 0x22: _TWO, 0x23: _TWO, 0x24: _BYTE,
    0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
MAXIMUM_PACKET_SIZE = 0x27
RECEIVE_MAXIMUM = 0x21


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("packet too short")
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("!I", self.take(4))[0])

    def varint(self) -> int:
        n, mult = 0, 1
        while True:
            b = self.u8()
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                return n

    def bin(self) -> bytes:
        return self.take(self.u16())

    def props(self) -> dict[int, Any]:
        end = self.varint() + self.pos
        out: dict[int, Any] = {}
        while self.pos < end:
            pid = self.varint()
            kind = _PROPS[pid]
            val: Any = {_BYTE: self.u8, _TWO: self.u16, _FOUR: self.u32, _VARINT: self.varint,
                        _STR: lambda: self.bin().decode(), _BIN: self.bin,
                        _PAIR: lambda: (self.bin().decode(), self.bin().decode())}[kind]()
            out[pid] = val
        return out


@dataclass
class Connect:
    client_id: str
    level: int  # 5 or 4 (3.1.1)
    props: dict[int, Any]
    will_topic: str | None
    will_payload: bytes | None
    at: float  # wall clock when the broker read it


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    ids: list[str]  # event ids of a CloudEvents batch on the events topic
    types: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.ids)


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    level: int = 4
    next_mid: int = 1
    client_id: str = ""
    graceful: bool = False  # closing on purpose: the answers already written must arrive


Answer = Callable[[Publish], "int | str"]


@dataclass(repr=False)  # what it records grows large: keep test reports short
class HostileBroker:
    answer: Answer = lambda p: 0x00
    connack_props: dict[int, int] = field(default_factory=dict)  # e.g. {RECEIVE_MAXIMUM: 4}
    refuse_connect: int | None = None  # CONNACK reason for every CONNECT, then close
    port: int = 0
    connects: list[Connect] = field(default_factory=list)
    success_ids: set[str] = field(default_factory=set)
    success_types: set[str] = field(default_factory=set)
    refused: list[tuple[int, list[str]]] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)  # every event id published to it
    closed_alone: set[str] = field(default_factory=set)  # one-event messages closed on
    answered: list[int | str] = field(default_factory=list)
    downstream_acks: list[tuple[int, int, int]] = field(default_factory=list)  # type, mid, rc
    state_messages: list[tuple[str, bytes]] = field(default_factory=list)  # birth, death
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._conns: list[_Conn] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="hostile-broker")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile broker did not start")

    def __repr__(self) -> str:
        return f"HostileBroker(port={self.port}, connects={len(self.connects)})"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    # --- what tests call ---------------------------------------------------------------

    def set_answer(self, answer: Answer) -> None:
        with self.lock:
            self.answer = answer

    def send_downstream(self, topic: str, size: int, qos: int = 1) -> None:
        """A PUBLISH of `size` payload bytes to the newest connection, streamed in chunks."""
        fut = asyncio.run_coroutine_threadsafe(self._send_big(topic, size, qos), self._loop)
        fut.result(120)

    def drop_connections(self) -> None:
        self._loop.call_soon_threadsafe(self._drop_all)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> HostileBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the server --------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._drop_all()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    def _drop_all(self) -> None:
        for c in list(self._conns):
            c.writer.transport.abort()
        self._conns.clear()

    async def _send_big(self, topic: str, size: int, qos: int) -> None:
        if not self._conns:
            raise RuntimeError("no client connected")
        c = self._conns[-1]
        t = topic.encode()
        head = struct.pack("!H", len(t)) + t
        if qos:
            head += struct.pack("!H", c.next_mid)
            c.next_mid += 1
        if c.level == 5:
            head += b"\x00"
        c.writer.write(bytes([0x30 | (qos << 1)]) + varint(len(head) + size) + head)
        chunk = b"x" * (1 << 20)
        left = size
        while left > 0:
            c.writer.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
            await c.writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        try:
            while True:
                first = await reader.readexactly(1)
                n, mult = 0, 1
                while True:
                    b = (await reader.readexactly(1))[0]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                body = await reader.readexactly(n)
                if not await self._packet(conn, first[0], _Buf(body)):
                    break
            if conn.graceful:
                # FIN after what was written; closing with unread input would send a RST,
                # and the client's kernel would throw away answers it had not read yet
                writer.write_eof()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        while await reader.read(1 << 16):
                            pass
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError):
            pass
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            writer.transport.abort()

    async def _packet(self, c: _Conn, head: int, b: _Buf) -> bool:
        kind = head & 0xF0
        w = c.writer
        if kind == 0x10:
            return self._connect(c, b)
        if kind == 0x30:
            return await self._publish(c, head, b)
        if kind == 0x40:  # PUBACK for a downstream message
            mid = b.u16()
            rc = b.u8() if len(b.data) > 2 else 0
            self.downstream_acks.append((0x40, mid, rc))
        elif kind == 0x50:
            mid = b.u16()
            rc = b.u8() if len(b.data) > 2 else 0
            self.downstream_acks.append((0x50, mid, rc))
        elif kind == 0x80:  # SUBSCRIBE: grant QoS 1 to each filter
            mid = b.u16()
            if c.level == 5:
                b.props()
            count = 0
            while b.pos < len(b.data):
                b.bin()
                b.u8()
                count += 1
            body = struct.pack("!H", mid) + (b"\x00" if c.level == 5 else b"") + b"\x01" * count
            w.write(b"\x90" + varint(len(body)) + body)
        elif kind == 0xA0:
            mid = b.u16()
            body = struct.pack("!H", mid) + (b"\x00" if c.level == 5 else b"")
            w.write(b"\xb0" + varint(len(body)) + body)
        elif kind == 0xC0:
            w.write(b"\xd0\x00")
        elif kind == 0xE0:
            return False
        return True

    def _connect(self, c: _Conn, b: _Buf) -> bool:
        b.bin()  # "MQTT"
        c.level = b.u8()
        flags = b.u8()
        b.u16()  # keepalive
        props = b.props() if c.level == 5 else {}
        client_id = b.bin().decode()
        will_topic = will_payload = None
        if flags & 0x04:
            if c.level == 5:
                b.props()
            will_topic = b.bin().decode()
            will_payload = b.bin()
        self.connects.append(Connect(client_id, c.level, props, will_topic, will_payload,
                                     time.time()))
        if self.refuse_connect is not None:
            rc = self.refuse_connect
            c.writer.write(b"\x20\x03\x00" + bytes([rc, 0]) if c.level == 5
                           else b"\x20\x02\x00" + bytes([rc]))
            c.graceful = True
            return False
        # a new connection with the same client id takes the session over
        for old in [o for o in self._conns if o.client_id == client_id]:
            old.writer.transport.abort()
            self._conns.remove(old)
        c.client_id = client_id
        self._conns.append(c)
        if c.level == 5:
            p = b"".join(
                bytes([pid]) + (struct.pack("!H", v) if _PROPS[pid] == _TWO
                                else struct.pack("!I", v))
                for pid, v in self.connack_props.items())
            body = b"\x00\x00" + varint(len(p)) + p
            c.writer.write(b"\x20" + varint(len(body)) + body)
        else:
            c.writer.write(b"\x20\x02\x00\x00")
        return True

    async def _publish(self, c: _Conn, head: int, b: _Buf) -> bool:
        qos = (head & 0x06) >> 1
        topic = b.bin().decode()
        mid = b.u16() if qos else 0
        if c.level == 5:
            b.props()
        payload = b.data[b.pos :]
        ids: list[str] = []
        types: list[str] = []
        if topic.endswith("/events"):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                events = json.loads(payload)
                ids = [e["id"] for e in events]
                types = [e["type"] for e in events]
        pub = Publish(topic, payload, qos, ids, types)
        if topic.endswith("/state"):
            self.state_messages.append((topic, payload))
        if not qos or not topic.endswith("/events"):
            if qos:
                c.writer.write(b"\x40\x02" + struct.pack("!H", mid))
            return True
        with self.lock:
            rc = self.answer(pub)
            self.answered.append(rc)
            self.seen_ids.update(ids)
            if rc in (DROP, DISCONNECT_TOO_LARGE) and len(ids) == 1:
                self.closed_alone.update(ids)
            if rc == DROP:
                c.graceful = True
                return False
            if rc == IGNORE:
                return True
            if rc == DISCONNECT_TOO_LARGE:
                c.writer.write(b"\xe0\x02\x95\x00")  # reason 0x95, no properties
                c.graceful = True
                return False
            assert isinstance(rc, int)
            if rc < 0x80:
                self.success_ids.update(ids)
                self.success_types.update(types)
            else:
                self.refused.append((rc, ids))
        if c.level == 5:
            c.writer.write(b"\x40\x03" + struct.pack("!H", mid) + bytes([rc]))
        else:  # 3.1.1 has no reason codes: a refusal is closing the connection
            if rc >= 0x80:
                c.graceful = True
                return False
            c.writer.write(b"\x40\x02" + struct.pack("!H", mid))
        return True
