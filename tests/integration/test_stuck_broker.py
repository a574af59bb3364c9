"""A broker that takes messages and never acknowledges some: the agent must not stall."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from simulators.brokers import free_port
from tests.conftest import AgentProcess, emit_lines, wait_for, write_config


class WithholdingBroker:
    """Just enough MQTT 3.1.1 to accept a client: CONNACK, PINGRESP, and PUBACK for QoS 1
    publishes only after `silent_s` seconds of its life. Counts what it acknowledged."""

    def __init__(self, silent_s: float) -> None:
        self.port = free_port()
        self.silent_until = time.monotonic() + silent_s
        self.acked_events: set[str] = set()
        self.ignored = 0
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._srv.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def _packet(self, conn: socket.socket) -> tuple[int, bytes]:
        head = self._read(conn, 1)[0]
        length, mult = 0, 1
        while True:
            b = self._read(conn, 1)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return head, self._read(conn, length)

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        with conn:
            while not self._stop.is_set():
                try:
                    head, body = self._packet(conn)
                except TimeoutError:
                    continue
                except (ConnectionError, OSError):
                    return
                kind = head & 0xF0
                if kind == 0x10:
                    conn.sendall(b"\x20\x02\x00\x00")
                elif kind == 0xC0:
                    conn.sendall(b"\xd0\x00")
                elif kind == 0xE0:
                    return
                elif kind == 0x30 and (head & 0x06) == 0x02:
                    tlen = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + tlen].decode()
                    mid = body[2 + tlen : 4 + tlen]
                    if time.monotonic() < self.silent_until:
                        self.ignored += 1
                        continue
                    if topic.endswith("/events"):
                        self.acked_events.update(e["id"] for e in json.loads(body[4 + tlen :]))
                    conn.sendall(b"\x40\x02" + mid)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._srv.close()
        self._thread.join(5)


def test_missing_pubacks_make_the_uplink_reconnect_and_resend(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    broker = WithholdingBroker(silent_s=3.0)
    try:
        cfg = write_config(tmp_path / "config.toml", url=f"mqtt://127.0.0.1:{broker.port}",
                           protocol="3.1.1", extra="ack_timeout_s = 2.0\ninflight_window = 4")
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        ids = emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {"i": i}})
                               for i in range(3000)])
        wait_for(lambda: set(ids) <= broker.acked_events, 60, what="every event acknowledged")
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 30, what="outbox drained")
        st = agent.status()
        assert broker.ignored > 0
        assert st["uplink"]["expired_batches"] > 0
        assert agent.stop() == 0
    finally:
        broker.close()
