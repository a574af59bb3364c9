"""The served kiosk (`o2o-edge kiosk --serve`) attacked as a web page in the store's browser
or a client on the network would: a websocket from another origin, or without one; more
sessions than a screen needs (each a kiosk process); a terminal size of a billion cells;
the staff PIN guessed over fresh sessions; `--serve` addresses that are no address.

Real `o2o-edge kiosk --serve` processes on a free loopback port, real HTTP/websocket clients
(aiohttp), kiosk processes counted from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import Config, KioskConfig
from kiosk.app import KioskApp
from kiosk.pin import LOCK_S, MAX_TRIES, hash_pin
from kiosk.screens.staff import StaffScreen
from kiosk.screens.staff_pin import StaffPinScreen
from kiosk.serve import origin_allowed
from tests.abuse.conftest import ABUSE
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config
from tests.integration.test_kiosk_flows import SIZE, until

BAD_ADDRESSES = ["127.0.0.1", ":", "host:notaport", "127.0.0.1:99999", ":8765", "[::1:80"]


# --- one helper process per test: the served kiosk ------------------------------------------

class Served:
    def __init__(self, tmp_path: Path, *extra: str, kiosk: str = "") -> None:
        self.cfg = write_config(tmp_path / "config.toml", url="",
                                extra=f"[kiosk]\n{kiosk}" if kiosk else "")
        with (tmp_path / "serve.log").open("w") as log:
            self.proc = subprocess.Popen(
                [*CLI, "kiosk", "--serve", "127.0.0.1:0", "--config", str(self.cfg), *extra],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"serving on (http://[^/\s]+)/", line)
        assert m, f"no 'serving on' line: {line!r} {(tmp_path / 'serve.log').read_text()}"
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def kiosks(self) -> list[int]:
        """The kiosk processes this server started (their command line names our config)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.proc.pid:
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # a session runs the kiosk's own module (kiosk/cli.py), the plain textual-serve
            # baseline the whole command line
            if (b"kiosk.cli" in cmd or b"agent.cli.main" in cmd) \
                    and str(self.cfg).encode() in cmd and b"--serve" not in cmd:
                found.append(int(entry.name))
        return found

    def rss_mib(self) -> float:
        """The server and its kiosks, resident."""
        total = 0
        for pid in [self.proc.pid, *self.kiosks()]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(m.group(1)) if m else 0
        return total / 1024

    def status(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/status", timeout=10) as r:  # noqa: S310
            return dict(json.loads(r.read()))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.stop()


async def _open(url: str, origin: str | None, session: aiohttp.ClientSession,
                query: str = "?width=100&height=30") -> aiohttp.ClientWebSocketResponse:
    headers = {"Origin": origin} if origin is not None else {}
    return await session.ws_connect(f"{url}/ws{query}", headers=headers)


async def _refusal(url: str, origin: str | None) -> tuple[int, str]:
    """What a client refused at the upgrade gets: the status and the text of the answer."""
    headers = {"Origin": origin} if origin is not None else {}
    headers.update({"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version":
                    "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    async with aiohttp.ClientSession() as session, \
            session.get(f"{url}/ws", headers=headers) as r:
        return r.status, await r.text()


async def _first_paint(ws: aiohttp.ClientWebSocketResponse) -> int:
    """Bytes of the kiosk's first screen: the session works."""
    got = 0
    deadline = time.monotonic() + 60
    while got < 1000 and time.monotonic() < deadline:
        msg = await ws.receive(timeout=60)
        if msg.type == aiohttp.WSMsgType.BINARY:
            got += len(msg.data)
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                          aiohttp.WSMsgType.ERROR):
            break
    return got


# --- origin -------------------------------------------------------------------------------

def test_a_websocket_from_another_origin_is_refused_and_starts_no_kiosk(
        served: Served) -> None:
    port = served.port
    bad = [None, "null", "http://evil.example", f"http://evil.example:{port}",
           f"http://127.0.0.1.evil.example:{port}", f"https://127.0.0.1:{port}",
           f"http://127.0.0.1:{port + 1}", "http://127.0.0.1", f"http://[::2]:{port}",
           f"http://user@evil.example:{port}", "http://127.0.0.1:notaport",
           "x" * 5000, "[@click=app.quit][/]"]

    async def run() -> None:
        for origin in bad:
            status, text = await _refusal(served.url, origin)
            assert status == 403, (origin, status, text)
            assert "opens only from its own page" in text and "\x1b" not in text
            assert len(text) < 400
        assert served.kiosks() == []
        # the page's own origin, and the loopback names of it, still work
        async with aiohttp.ClientSession() as session:
            for origin in (served.url, f"http://localhost:{port}"):
                ws = await _open(served.url, origin, session)
                assert await _first_paint(ws) >= 1000, origin
                await ws.close()
    asyncio.run(run())
    status = served.status()
    assert status["refused"] == {"origin": len(bad)} and status["started"] == 2


def test_refusals_reach_the_agent_as_counted_events(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    served = Served(tmp_path)
    agent = AgentProcess(served.cfg)
    agent_factory.append(agent)
    try:
        agent.start()

        async def run() -> None:
            for origin in (None, "http://evil.example", "http://evil.example", "null"):
                assert (await _refusal(served.url, origin))[0] == 403
            async with aiohttp.ClientSession() as session:
                ws = [await _open(served.url, served.url, session) for _ in range(2)]
                assert (await _refusal(served.url, served.url))[0] == 503
                for w in ws:
                    await w.close()
        asyncio.run(run())

        def told() -> Counter[str]:
            total: Counter[str] = Counter()
            res = subprocess.run([*CLI, "outbox", "export", "--config", str(served.cfg)],
                                 capture_output=True, text=True, cwd=ROOT, timeout=60)
            for line in res.stdout.splitlines():
                event = json.loads(line)
                if event["type"] == "o2o.kiosk.serve":
                    total.update(event["data"]["refused"])
            return total

        # the first refusal is reported at once, the rest summed within REPORT_EVERY_S
        wait_for(lambda: told() == Counter({"origin": 4, "sessions": 1}), 30,
                 what="the refusals in the agent's outbox")
        assert served.status()["reported_to_agent"] == {"origin": 4, "sessions": 1}
    finally:
        served.stop()


def test_origin_rule() -> None:
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1", 8765)
    assert origin_allowed("http://localhost:8765", "127.0.0.1", 8765)
    assert origin_allowed("http://[::1]:8765", "::1", 8765)
    assert not origin_allowed(None, "127.0.0.1", 8765)
    for more in ("/x", "/", "?q", "#f"):
        assert not origin_allowed(f"http://127.0.0.1:8765{more}", "127.0.0.1", 8765)
    assert not origin_allowed("http://user@127.0.0.1:8765", "127.0.0.1", 8765)
    # served on every interface: the address the browser used, if it is an address
    assert origin_allowed("http://192.168.1.5:8765", "0.0.0.0", 8765, "192.168.1.5:8765")  # noqa: S104
    assert not origin_allowed("http://192.168.1.6:8765", "0.0.0.0", 8765, "192.168.1.5:8765")  # noqa: S104
    # a DNS name the attacker controls, rebound to this machine: same host, but no address
    assert not origin_allowed("http://rebind.example:8765", "0.0.0.0", 8765,  # noqa: S104
                              "rebind.example:8765")
    assert origin_allowed("http://kiosk.lan:8765", "kiosk.lan", 8765)


ORIGINS = st.builds(
    lambda scheme, host, port, rest: f"{scheme}://{host}:{port}{rest}",
    st.sampled_from(["http", "HTTP", "https", "ws", ""]),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "evil.example", "127.0.0.1.evil",
                     "user@127.0.0.1", "LOCALHOST", "0.0.0.0"]),  # noqa: S104
    st.just(8765) | st.just(8765) | st.integers(min_value=-1, max_value=70000)
    | st.text(max_size=6),
    st.sampled_from(["", "/", "/x", "?q", "#f", "?", "#"]))


@ABUSE
@given(origin=ORIGINS | ORIGINS | st.text(max_size=200))
def test_only_the_pages_own_origin_opens_the_websocket(origin: str) -> None:
    allowed = origin_allowed(origin, "127.0.0.1", 8765)
    if allowed:
        parts = urlsplit(origin)
        assert parts.scheme == "http" and parts.port == 8765
        assert (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
        assert not parts.path and not parts.query and "@" not in parts.netloc


# --- sessions ------------------------------------------------------------------------------

def test_sessions_past_the_cap_are_refused_and_a_closed_one_frees_its_place(
        served: Served) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            # a screen a billion cells large is asked for: the kiosk gets a bounded one
            first = await _open(served.url, served.url, session,
                                "?width=100000&height=100000")
            second = await _open(served.url, served.url, session)
            assert await _first_paint(first) >= 1000 and await _first_paint(second) >= 1000
            for _ in range(3):
                status, text = await _refusal(served.url, served.url)
                assert status == 503 and "2 kiosk sessions are open" in text, (status, text)
            assert len(served.kiosks()) == 2
            await first.close()
            await asyncio.to_thread(wait_for, lambda: served.status()["sessions"] == 1, 30,
                                    what="a closed session's place freed")
            third = await _open(served.url, served.url, session)
            assert await _first_paint(third) >= 1000
            await second.close()
            await third.close()
    asyncio.run(run())
    status = served.status()
    assert status["refused"] == {"sessions": 3} and status["started"] == 3
    wait_for(lambda: served.kiosks() == [], 30, what="the kiosks of closed sessions gone")


def test_the_cap_is_the_kiosks_own_setting(tmp_path: Path) -> None:
    served = Served(tmp_path, kiosk="serve_sessions = 1\n")

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await _open(served.url, served.url, session)
            status, text = await _refusal(served.url, served.url)
            assert status == 503 and "1 kiosk sessions are open" in text
            await ws.close()
    try:
        asyncio.run(run())
    finally:
        served.stop()
    for bad in (["--sessions", "0"], ["--sessions", "17"]):
        res = subprocess.run([*CLI, "kiosk", "--serve", "127.0.0.1:0", "--config",
                              str(served.cfg), *bad], capture_output=True, text=True, cwd=ROOT,
                             timeout=60)
        assert res.returncode == 2 and "give 1 to 16" in res.stderr, res
        assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_twenty_connections_memory_against_textual_serve_alone(tmp_path: Path) -> None:
    """20 websocket connections held open: RSS of the server and its kiosks, ours (capped at
    2) against textual-serve's own server in the same run (a kiosk per connection)."""
    results: dict[str, tuple[float, float, int]] = {}
    for name in ("textual-serve", "o2o-edge"):
        folder = tmp_path / name
        folder.mkdir()
        served = Served(folder) if name == "o2o-edge" else _plain_textual_serve(folder)
        try:
            before = served.rss_mib()
            after, kiosks = asyncio.run(_hold_twenty(served))
            results[name] = (before, after, kiosks)
        finally:
            served.stop()
    print("RSS MiB before/after 20 connections, kiosk processes:", results)
    assert results["o2o-edge"][2] == 2 and results["textual-serve"][2] == 20
    assert results["o2o-edge"][1] < results["textual-serve"][1] / 4


async def _hold_twenty(served: Served) -> tuple[float, int]:
    """RSS and kiosk processes with 20 connections attempted and the accepted ones open."""
    async with aiohttp.ClientSession() as session:
        sockets = []
        for _ in range(20):
            with contextlib.suppress(aiohttp.WSServerHandshakeError):
                sockets.append(await _open(served.url, served.url, session))
        await asyncio.gather(*(_first_paint(ws) for ws in sockets))
        measured = (served.rss_mib(), len(served.kiosks()))
        for ws in sockets:
            await ws.close()
    return measured


def _plain_textual_serve(folder: Path) -> Served:
    """textual-serve's Server as it comes, serving the same kiosk: the baseline."""
    cfg = write_config(folder / "config.toml", url="")
    port = _free_port()
    code = ("import sys, shlex; from textual_serve.server import Server; "
            f"Server(shlex.join([sys.executable, '-m', 'agent.cli.main', 'kiosk', '--config', "
            f"{str(cfg)!r}]), host='127.0.0.1', port={port}).serve()")
    s = Served.__new__(Served)
    s.cfg = cfg
    s.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    s.url, s.port = f"http://127.0.0.1:{port}", port
    wait_for(lambda: _listening(port), 30, what="textual-serve listening")
    return s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- the staff PIN over sessions ------------------------------------------------------------

def _pin_config(pin: str) -> Config:
    return Config(kiosk=dataclasses.replace(KioskConfig(), staff_pin_hash=hash_pin(pin)))


def test_wrong_pins_over_separate_kiosks_stay_locked_out() -> None:
    """Each wrong PIN from a new kiosk (as each browser connection is): the fifth locks
    every kiosk, a sixth one too, and the lock-out ends for all of them."""
    cfg = _pin_config("2468")
    now = [5000.0]

    async def one_kiosk(digits: str) -> str:
        app = KioskApp(cfg, clock=lambda: now[0], connect=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.click("#go-staff")
            await until(pilot, lambda: isinstance(app.screen, StaffPinScreen))
            said = str(app.screen.query_one("#pin-message").render())
            if "Try again" in said:
                return said
            for d in digits:
                await pilot.click(f"#key-{d}")
            await pilot.click("#key-submit")
            await pilot.pause()
            if isinstance(app.screen, StaffScreen):
                return "staff mode"
            return str(app.screen.query_one("#pin-message").render())

    async def run() -> None:
        said = [await one_kiosk("1111") for _ in range(MAX_TRIES)]
        assert said[:-1] == [f"Wrong PIN. {MAX_TRIES - 1 - i} tries left."
                             for i in range(MAX_TRIES - 1)]
        assert said[-1] == f"Too many wrong PINs. Try again in {LOCK_S:.0f} seconds."
        # a new session shows the lock-out at once, and the right PIN does not open it
        assert "Try again in 60 seconds" in await one_kiosk("2468")
        now[0] += LOCK_S + 1
        assert await one_kiosk("2468") == "staff mode"
    asyncio.run(run())


def test_wrong_pins_from_concurrent_kiosk_processes_are_all_counted(tmp_path: Path) -> None:
    """Eight kiosk processes at once, each one wrong PIN: five are counted and lock every
    kiosk, the other three meet the lock (none lost to a race on the shared count)."""
    cfg = write_config(tmp_path / "config.toml", url="",
                       extra=f'[kiosk]\nstaff_pin_hash = "{hash_pin("2468")}"\n')
    code = ("import sys; from agent.config import load_config; from kiosk.app import KioskApp; "
            "g = KioskApp(load_config(sys.argv[1]), connect=False).pin_gate; "
            "print(g.check('1111'), round(g.locked_for()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(cfg)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
             for _ in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    answers = sorted(out.split()[1] for out, _ in outs)
    assert all(out.split()[0] == "False" for out, _ in outs)
    # the fifth wrong PIN locked; the three after it met the lock (60 s left, give or take)
    assert sum(int(a) > 0 for a in answers) == 8 - (MAX_TRIES - 1), answers
    from agent.config import load_config

    gate = KioskApp(load_config(str(cfg)), connect=False).pin_gate
    assert 0 < gate.locked_for() <= LOCK_S and not gate.check("2468")


# --- --serve addresses ------------------------------------------------------------------------

@pytest.mark.parametrize("where", [*BAD_ADDRESSES, "taken"])
def test_serve_addresses_that_are_none_get_one_line_and_exit_2(
        tmp_path: Path, where: str) -> None:
    cfg = write_config(tmp_path / "config.toml", url="")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if where == "taken":
            where = f"127.0.0.1:{taken.getsockname()[1]}"
        res = subprocess.run([*CLI, "kiosk", "--serve", where, "--config", str(cfg)],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("o2o-edge kiosk: "), res.stderr
    assert "Traceback" not in res.stderr
    assert "like 127.0.0.1:8765" in lines[0] or "port is taken" in lines[0], lines[0]
