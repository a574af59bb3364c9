"""The Prometheus endpoint against careless and hostile clients: idle and trickling
connections, odd requests, invented event types — and the whole page checked by promtool.

Before the endpoint moved onto the event loop, each connection held a thread of
prometheus-client's server with no timeout: 200 idle connections were 200 more threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from agent.bus.client import BusClient
from agent.errors import AgentError
from agent.metrics import (
    MAX_REASON_SERIES,
    MAX_TYPE_LABEL,
    MAX_TYPE_SERIES,
    OTHER_TYPE,
    AgentCollector,
    refusal_metrics,
    serve,
)
from agent.metrics_server import HEAD_TIMEOUT_S, MAX_CONNECTIONS
from simulators.camera_files import blank, write_video
from simulators.qr_frames import make_frame
from tests.abuse.conftest import ABUSE
from tests.conftest import AgentProcess, emit_lines, wait_for, write_config

IDLE: int = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int, timeout: float = 10) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return str(r.read().decode())


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _refused(text: str, reason: str) -> float:
    for s in _samples(text)["o2o_metrics_connections_refused_total"]:
        if s.labels["reason"] == reason:
            return float(s.value)
    raise KeyError(reason)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _agent(tmp_path: Path, agent_factory: list[AgentProcess], extra: str = "") -> tuple[
        AgentProcess, int, Path]:
    port = _free_port()
    cfg = write_config(tmp_path / "config.toml", url="", extra=f"""
[metrics]
listen = "127.0.0.1:{port}"
{extra}
""")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: "o2o_agent_info" in _scrape(port), 30, what="metrics served")
    return agent, port, cfg


def test_idle_and_trickling_connections_hold_no_thread_and_a_scrape_still_answers(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    agent, port, _ = _agent(tmp_path, agent_factory)
    assert agent.proc is not None
    pid = agent.proc.pid
    threads_before, fds_before = _threads(pid), _fds(pid)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
    try:
        for s in idle[-10:]:  # the newest ones trickle: one byte, then nothing for ages
            s.sendall(b"G")
        started = time.monotonic()
        text = _scrape(port, timeout=5)
        took = time.monotonic() - started
        assert "o2o_agent_uptime_seconds" in text and took < 2.0, took
        threads_after, fds_after = _threads(pid), _fds(pid)
        print(f"agent threads {threads_before} -> {threads_after}, fds {fds_before} -> "
              f"{fds_after} with {IDLE} idle connections; scrape {took * 1000:.0f} ms")
        assert threads_after <= threads_before + 1  # no thread per connection
        assert fds_after <= fds_before + MAX_CONNECTIONS + 2  # capped, oldest idle let go
        assert _refused(text, "evicted") >= IDLE - MAX_CONNECTIONS

        # those still open are closed by the agent once their request head is overdue
        def all_closed() -> bool:
            for s in idle:
                s.setblocking(False)
                try:
                    if s.recv(1) != b"":
                        return False
                except BlockingIOError:
                    return False
                except ConnectionError:
                    pass
            return True
        wait_for(all_closed, HEAD_TIMEOUT_S + 10, what="idle connections closed")
        assert _refused(_scrape(port), "timeout") >= 1
    finally:
        for s in idle:
            s.close()
    assert agent.stop() == 0


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_odd_requests_are_answered_with_a_status_and_counted() -> None:
    async def main() -> None:
        collector = AgentCollector(lambda: {
            "agent": {"version": "1", "store": "s", "device": "d", "uptime_s": 1},
            "outbox": {}, "uplink": {}})
        server = serve(collector, "127.0.0.1:0")
        port = server.port

        def check() -> None:
            cases = {b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n": b"HTTP/1.1 200 ",
                     b"HEAD /metrics HTTP/1.1\r\n\r\n": b"HTTP/1.1 200 ",
                     b"POST /metrics HTTP/1.1\r\n\r\n": b"HTTP/1.1 405 ",
                     b"GET /../../etc/passwd HTTP/1.1\r\n\r\n": b"HTTP/1.1 404 ",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n": b"HTTP/1.1 400 ",
                     b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n":
                         b"HTTP/1.1 431 "}
            for request, status in cases.items():
                assert _raw(port, request).startswith(status), request[:40]
            head = _raw(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
            assert head.endswith(b"\r\n\r\n")  # HEAD: no body
            text = _scrape(port)
            for reason in ("bad-request", "not-found", "too-large"):
                assert _refused(text, reason) >= 1, reason
            assert _raw(port, b"") == b""  # a client that hangs up at once: nothing, counted
        await asyncio.to_thread(check)
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    asyncio.run(main())


def _ask(port: int, data: bytes) -> tuple[bytes, float]:
    """Like a plain HTTP client: send the request, then read the answer until the server
    closes (no half-close first, so the server must not wait for one)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - started


def test_lf_only_heads_are_answered_and_a_huge_head_gets_431_not_a_reset() -> None:
    async def main() -> None:
        collector = AgentCollector(lambda: {
            "agent": {"version": "1", "store": "s", "device": "d", "uptime_s": 1},
            "outbox": {}, "uplink": {}})
        server = serve(collector, "127.0.0.1:0")
        port = server.port

        def check() -> None:
            # bare LF line endings, as curl-like tools and netcat users send them
            for request in (b"GET /metrics HTTP/1.1\n\n", b"GET /metrics HTTP/1.1\nHost: x\n\n",
                            b"GET /metrics HTTP/1.1\r\nHost: x\n\r\n"):
                answer, took = _ask(port, request)
                assert answer.startswith(b"HTTP/1.1 200 "), (request, answer[:60])
                assert b"o2o_agent_uptime_seconds" in answer
                assert took < HEAD_TIMEOUT_S / 2, took  # answered at once, not at the timeout
            # a 200 KB head: the answer is read in full (the rest of the head is drained, so
            # the close is no reset that would throw the answer away)
            for request in (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
                            b"GET /metrics HTTP/1.1\r\n" + b"H: v\r\n" * 20_000 + b"\r\n"):
                answer, _ = _ask(port, request)
                assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
                assert answer.endswith(b"request head too large\n")
            # a refusal with more input behind it: answered, not reset
            answer, _ = _ask(port, b"\r\n" * 100_000)
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert _refused(_scrape(port), "too-large") == 2
        await asyncio.to_thread(check)
        await asyncio.to_thread(server.shutdown)
        server.server_close()
    asyncio.run(main())


@ABUSE
@given(st.lists(st.text(min_size=1, max_size=300), max_size=400))
def test_event_type_series_are_capped_and_nothing_is_lost(types: list[str]) -> None:
    collector = AgentCollector(lambda: {})
    collector.count_committed(types)
    collector.count_committed(types)
    assert len(collector.committed) <= MAX_TYPE_SERIES + 1
    assert sum(collector.committed.values()) == 2 * len(types)
    assert all(len(t) <= MAX_TYPE_LABEL or t == OTHER_TYPE for t in collector.committed)
    # the first types keep their own series, whatever comes after
    first = list(dict.fromkeys(t for t in types if len(t) <= MAX_TYPE_LABEL))
    for t in first[:MAX_TYPE_SERIES - 1]:
        assert collector.committed[t] >= 2


@ABUSE
@given(st.dictionaries(st.text(max_size=300), st.integers(0, 10**12), max_size=200))
def test_reason_labels_from_status_stay_bounded(reasons: dict[str, int]) -> None:
    status = {"bus": {"refused_requests": reasons, "refused_events": reasons},
              "commit_hooks": {"failures": reasons}}
    for fam in refusal_metrics(status):
        assert len(fam.samples) <= MAX_REASON_SERIES + 1, fam.name
        assert all(len(x.labels.get("reason", x.labels.get("hook", ""))) <= MAX_TYPE_LABEL
                   for x in fam.samples)
        if fam.name == "o2o_bus_events_refused":
            assert sum(x.value for x in fam.samples) == sum(reasons.values())  # none lost


def test_the_whole_page_passes_promtool_with_the_decode_histogram(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus); python3 dev.py test "
                    "installs it when run as root")
    video = tmp_path / "shelf.avi"
    frames = [make_frame("https://shop.example/p/1", (320, 240), (), seed=k).image
              for k in range(10)] + [blank((320, 240))] * 10
    write_video(video, frames, fps=30)
    agent, port, cfg = _agent(tmp_path, agent_factory, extra=f"""
[qr]
enabled = true
camera = "{video}"
fps_limit = 30
domains = ["shop.example"]
""")
    emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.view", "data": {"page": "p"}})] * 3)
    # a forged agent record: refused, counted
    with BusClient(agent.socket, timeout=10) as bus, pytest.raises(
            AgentError, match="agent's own record"):
        bus.emit([{"type": "o2o.agent.started", "data": {}}])
    wait_for(lambda: agent.status()["qr"]["camera"]["state"] == "ended", 60,
             what="the video played")
    text = _scrape(port)
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), (
        res.stdout + res.stderr)
    m = _samples(text)
    assert "o2o_qr_decode_ms" not in m
    frames_decoded = agent.status()["qr"]["frames_decoded"]
    count = m["o2o_qr_decode_seconds_count"][0].value
    assert count == frames_decoded > 0
    inf = [s for s in m["o2o_qr_decode_seconds_bucket"] if s.labels["le"] == "+Inf"]
    assert inf[0].value == count and m["o2o_qr_decode_seconds_sum"][0].value > 0
    # the refusals and states that status shows are on the page too
    refused = {x.labels["reason"]: x.value for x in m["o2o_bus_events_refused_total"]}
    assert refused == {"reserved-type": 1}
    for name, value in (("o2o_outbox_writer_up", 1), ("o2o_outbox_quarantined_total", 0),
                        ("o2o_outbox_reserve_held", 1), ("o2o_bus_connections_refused_total", 0),
                        ("o2o_bus_subscribers_lagged_total", 0),
                        ("o2o_store_db_quarantined_total", 0),
                        ("o2o_uplink_batches_refused_total", 0)):
        assert [x.value for x in m[name]] == [value], name
    assert "o2o_commit_hook_failures" in text and "o2o_bus_requests_refused" in text
    assert agent.stop() == 0
