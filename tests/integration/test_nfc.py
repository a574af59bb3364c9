"""The real nfcpy reader (its UDP driver) against emulated tags: taps, holds and re-taps,
every tag type, malformed and hostile content, a reader that is missing or goes away, and
tag writing with read-back — through the reader driver, the agent process and the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, NfcConfig, QrConfig
from agent.nfc_source import NfcSource
from drivers.nfc.ndef import decode_message
from drivers.nfc.ndef_encode import smartposter_message, uri_message
from drivers.nfc.reader import NfcpyReader
from simulators.nfc_tags import (
    EmulatedTag,
    TagEmulator,
    felica,
    free_udp_port,
    ntag213,
    play,
    type4a,
)
from simulators.nfc_type_a import cascade_levels
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config

SHELF_UID = bytes.fromhex("04a1b2c3d4e5f6")
LINK = "https://shop.example/p/42?utm_source=shelf&utm_campaign=autumn"
POSTER = smartposter_message(LINK, {"en": "Autumn coffee", "de": "Herbstkaffee"})


class Harness:
    """NfcSource over NfcpyReader on its own event loop thread; events collected."""

    def __init__(self, port: int, targets: tuple[str, ...] = ("106A",), **cfg: Any) -> None:
        self.cfg = Config(nfc=NfcConfig(enabled=True, reader=f"udp:127.0.0.1:{port}",
                                        targets=list(targets), **cfg),
                          qr=QrConfig(domains=["shop.example"]))
        self.reader = NfcpyReader(self.cfg.nfc.reader, targets=targets,
                                  debounce_s=self.cfg.nfc.debounce_s)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.source = NfcSource(self.cfg, self.reader,
                                lambda _t, d: self.events.append((time.time(), d)))
        self._thread = threading.Thread(target=lambda: asyncio.run(self.source.run()),
                                        daemon=True)

    def __enter__(self) -> Harness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.stop()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the reader did not stop"

    def taps(self) -> list[dict[str, Any]]:
        return [d for _, d in self.events]

    def wait_taps(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.events) >= n, timeout,
                 what=lambda: f"{n} taps, have {self.taps()} / {self.reader.status()}")
        return self.taps()


@pytest.fixture
def emulator() -> Iterator[TagEmulator]:
    with TagEmulator(free_udp_port()) as emu:
        yield emu
    assert not emu.errors, emu.errors


def _tap(emu: TagEmulator, tag: EmulatedTag, hold_s: float = 0.0) -> None:
    emu.present(tag)
    wait_for(lambda: emu.sessions > 0, 10, what="the reader found the tag")
    time.sleep(hold_s)


@pytest.mark.parametrize("make,targets", [
    (lambda: ntag213(SHELF_UID, POSTER), ("106A",)),
    (lambda: felica(bytes.fromhex("02fe0102030405ff"), POSTER), ("212F",)),
    (lambda: type4a(bytes.fromhex("04b1b2c3d4e5f6"), POSTER), ("106A",)),
], ids=["type2-ntag213", "type3-felica", "type4a-isodep"])
def test_each_tag_type_is_read_into_one_tap(emulator: TagEmulator, make: Any,
                                           targets: tuple[str, ...]) -> None:
    tag = make()
    with Harness(emulator.port, targets, shelf_tags=[f"{SHELF_UID.hex()}=aisle-3"]) as h:
        emulator.present(tag)
        (tap,) = h.wait_taps(1)
        assert tap["ndef"] == "ok"
        (rec,) = tap["records"]
        assert rec["type"] == "smartposter" and rec["uri"] == LINK
        assert rec["titles"] == {"en": "Autumn coffee", "de": "Herbstkaffee"}
        assert rec["class"] == "product" and rec["utm"]["campaign"] == "autumn"
        assert tap["tag_type"] == {"type2": "Type2Tag", "type3": "Type3Tag",
                                   "type4a": "Type4Tag"}[tag.kind]
        if tag.uid == SHELF_UID:  # registered: named by UID and label
            assert tap["tag"] == {"id": SHELF_UID.hex(), "kind": "shelf", "label": "aisle-3"}
        else:  # anything else only by a keyed hash: the UID is nowhere in the event
            assert tap["tag"]["kind"] == "unregistered"
            assert tap["tag"]["id"].startswith("anon:")
            assert tag.uid.hex() not in json.dumps(tap).lower()


def test_held_tag_is_one_tap_wobble_is_debounced_and_a_new_tap_counts(
        emulator: TagEmulator) -> None:
    tag = ntag213(SHELF_UID, POSTER)
    with Harness(emulator.port, debounce_s=1.0) as h:
        _tap(emulator, tag, hold_s=3.0)  # held for 3 s: the reader keeps checking it is there
        assert len(h.wait_taps(1)) == 1
        emulator.remove()
        wait_for(lambda: h.reader.state == "ready", 5, what="removal noticed")
        emulator.present(tag)  # back at once: the edge of the field, not a new tap
        wait_for(lambda: h.reader.counts["debounced"] == 1, 10, what="re-read debounced")
        emulator.remove()
        time.sleep(1.5)  # taken away for longer than debounce_s
        emulator.present(tag)
        taps = h.wait_taps(2)
        time.sleep(1.0)
        assert len(h.taps()) == 2 and len(taps) == 2
        st = h.reader.status()
        assert st["taps"] == 2 and st["debounced"] == 1 and st["state"] == "tag-present"


@pytest.mark.parametrize("make,targets", [
    (lambda: ntag213(SHELF_UID, POSTER), ("106A",)),
    (lambda: felica(bytes.fromhex("02fe0102030405ff"), POSTER), ("212F",)),
    (lambda: type4a(bytes.fromhex("04b1b2c3d4e5f6"), POSTER), ("106A",)),
], ids=["type2-ntag213", "type3-felica", "type4a-isodep"])
def test_a_card_held_on_a_busy_machine_is_one_tap(make: Any, targets: tuple[str, ...]) -> None:
    """An emulated tag answering 20 ms late, as on a machine too busy to run it at once: the
    card held for 2 s is one tap, with no debounce to hide a read that took it for gone (a
    FeliCa presence check waits 3.6 ms), and taking it away is still noticed at once."""
    with TagEmulator(free_udp_port(), reply_delay_s=0.02) as emu, \
            Harness(emu.port, targets, debounce_s=0.0) as h:
        emu.present(make())
        (tap,) = h.wait_taps(1)
        assert tap["ndef"] == "ok"
        time.sleep(2.0)
        st = h.reader.status()
        assert (len(h.taps()), st["taps"], st["state"]) == (1, 1, "tag-present"), st
        emu.remove()
        t = time.monotonic()
        wait_for(lambda: h.reader.state == "ready", 5, what="removal noticed")
        assert time.monotonic() - t < 1.5
        assert len(h.taps()) == 1 and not emu.errors


def test_emulated_tag_answers_like_a_card_in_the_field(emulator: TagEmulator) -> None:
    """Over the emulator's UDP port: a command left over from an earlier session is not an
    activation; a REQA in the middle of a session starts selection over (the reader is
    looking for tags again), so a tag put back is always found."""
    emulator.present(ntag213(SHELF_UID, POSTER))
    levels = cascade_levels(SHELF_UID)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)

        def ask(frame: str) -> bytes | None:
            s.sendto(f"106A {frame}".encode(), ("127.0.0.1", emulator.port))
            try:
                return s.recvfrom(1024)[0]
            except TimeoutError:
                return None

        def select() -> None:
            assert ask("26") == b"106A 4400"
            for cmd, level in zip(("93", "95"), levels, strict=True):
                assert ask(cmd + "20") == b"106A " + level.hex().encode()
                assert ask(cmd + "70" + level.hex()) is not None

        assert ask("3003") is None  # a READ before selection: silence
        select()
        assert (ask("3003") or b"").startswith(b"106A e1101200")  # the capability container
        assert emulator.sessions == 1
        select()  # REQA mid-session: the session ends, selection starts over at once
        assert (ask("3003") or b"").startswith(b"106A e1101200")
        assert emulator.sessions == 2


def test_a_scripted_sequence_of_taps(emulator: TagEmulator) -> None:
    a = ntag213(SHELF_UID, POSTER)
    b = type4a(bytes.fromhex("04e1e2e3e4e5e6"), uri_message(LINK))
    script = [(0.0, a), (1.0, None), (2.0, b), (3.0, None), (3.3, b), (4.0, None), (5.5, a),
              (6.5, None)]
    with Harness(emulator.port, debounce_s=1.0) as h:
        play(emulator, script)
        time.sleep(1.0)
        taps = h.taps()
        st = h.reader.status()
    assert [t["tag_type"] for t in taps] == ["Type2Tag", "Type4Tag", "Type2Tag"]
    assert st["debounced"] == 1 and st["state"] == "ready"


def test_malformed_and_hostile_content_is_reported_never_passed_on(
        emulator: TagEmulator) -> None:
    cut_short = bytes.fromhex("d1010955") + b"\x04shop"  # claims 9 payload bytes, has 5
    hostile = [uri_message("javascript:alert(document.cookie)"),
               uri_message("https://xn--shp-5cd.example/p/1"),
               smartposter_message("https://evil.example/login", {"en": "Free coffee"})]
    with Harness(emulator.port, debounce_s=0.0) as h:
        for i, msg in enumerate([cut_short, *hostile, b""]):
            emulator.present(ntag213(bytes([4, 0, 0, 0, 0, 0, i]), msg))
            h.wait_taps(i + 1)
            emulator.remove()
            wait_for(lambda: h.reader.state == "ready", 5)
        taps = h.taps()
    bad = taps[0]
    assert bad["ndef"] == "malformed" and bad["records"] == []
    assert "record 1" in bad["reason"] and "cut short" in bad["reason"]
    reasons = [t["records"][0]["reason"] for t in taps[1:4]]
    assert reasons == ["scheme-not-allowed", "punycode-host", "host-not-allowlisted"]
    for t in taps[1:4]:
        text = json.dumps(t)
        assert "javascript" not in text and "evil.example" not in text and "xn--" not in text
        assert "Free coffee" not in text  # the poster's title goes with its link
    assert taps[4]["ndef"] == "empty" and taps[4]["records"] == []


def test_missing_reader_is_reported_and_retried(tmp_path: Path) -> None:
    reader = NfcpyReader("usb:054c:06c3", backoff_min_s=0.05, backoff_max_s=0.2)
    events: list[Any] = []

    async def run_for(seconds: float) -> None:
        task = asyncio.create_task(reader.run(events.append))
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_for(1.5))
    st = reader.status()
    assert st["state"] == "stopped" and st["opens"] == 0 and events == []
    assert "no NFC reader at 'usb:054c:06c3'" in st["recent_errors"][-1]
    assert "lsusb" in st["recent_errors"][-1]


def test_reader_that_goes_away_is_reopened_and_reads_again(emulator: TagEmulator) -> None:
    with Harness(emulator.port, debounce_s=0.0) as h:
        _tap(emulator, ntag213(SHELF_UID, POSTER))
        h.wait_taps(1)
        emulator.remove()
        wait_for(lambda: h.reader.state == "ready", 5)
        # the device disappears under nfcpy: its next transfer fails with an OSError
        h.reader._clf.device.socket.close()
        wait_for(lambda: h.reader.counts["lost"] == 1, 10, what="loss noticed")
        emulator.present(ntag213(bytes.fromhex("04000000000099"), uri_message(LINK)))
        taps = h.wait_taps(2)
        st = h.reader.status()
    assert st["opens"] == 2 and "stopped answering" in st["recent_errors"][-1]
    assert taps[1]["records"][0]["uri"] == LINK


# --- tag writing ---------------------------------------------------------------------------


def _nfc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *(["-v"] if args[0] == "-v" else []), "nfc", *args[args[0] == "-v":]], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def _writer_config(tmp_path: Path, port: int, targets: str = '["106A"]') -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[qr]\ndomains = ["shop.example"]\n[nfc]\nreader = "udp:127.0.0.1:{port}"\n'
                   f"targets = {targets}\n")
    return str(cfg)


def test_write_smart_poster_reads_back_and_locks(tmp_path: Path, emulator: TagEmulator) -> None:
    tag = ntag213(bytes.fromhex("04c1c2c3c4c5c6"), uri_message("https://shop.example/old"))
    emulator.present(tag)
    cfg = _writer_config(tmp_path, emulator.port)
    res = _nfc("write", "--config", cfg, "--uri", LINK, "--title", "Autumn coffee", "--lock")
    assert res.returncode == 0, res.stderr
    assert "read back and verified, locked" in res.stdout
    assert decode_message(tag.ndef) == {"records": [{
        "type": "smartposter", "uri": LINK, "titles": {"en": "Autumn coffee"}}]}
    assert tag.locked_by_reader and tag.read_only
    # what the agent will see on it
    res = _nfc("read", "--config", cfg)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["records"][0]["uri"] == LINK
    # and a locked tag is refused, with nothing written
    before = tag.ndef
    res = _nfc("write", "--config", cfg, "--uri", "https://shop.example/new")
    assert res.returncode == 1 and "read-only (locked)" in res.stderr
    assert "Traceback" not in res.stderr and tag.ndef == before


def test_write_refuses_what_cannot_be_done_before_writing(tmp_path: Path,
                                                         emulator: TagEmulator) -> None:
    small = type4a(bytes.fromhex("04d1d2d3d4d5d6"), uri_message("https://shop.example/a"),
                   capacity=24)
    emulator.present(small)
    cfg = _writer_config(tmp_path, emulator.port)
    long_link = "https://shop.example/p/" + "x" * 40
    res = _nfc("write", "--config", cfg, "--uri", long_link)
    assert res.returncode == 1 and "needs 60 bytes but this Type4Tag holds 24" in res.stderr
    res = _nfc("write", "--config", cfg, "--uri", "https://shop.example/b", "--lock")
    assert res.returncode == 1 and "cannot be locked" in res.stderr
    res = _nfc("write", "--config", cfg, "--uri", "javascript:alert(1)")
    assert res.returncode == 1 and "scheme-not-allowed" in res.stderr
    assert small.ndef == uri_message("https://shop.example/a") and small.writes == 0
    # the same write without --lock works, and on a FeliCa tag too
    res = _nfc("write", "--config", cfg, "--uri", "https://shop.example/b")
    assert res.returncode == 0, res.stderr
    assert decode_message(small.ndef)["records"][0]["uri"] == "https://shop.example/b"
    emulator.present(felica(bytes.fromhex("02fe000000000001")))
    cfg3 = _writer_config(tmp_path, emulator.port, '["212F"]')
    res = _nfc("-v", "write", "--config", cfg3, "--uri", LINK, "--title", "Kaffee", "--lang", "de")
    assert res.returncode == 0, res.stderr + str(emulator.errors)
    assert decode_message(emulator.tag.ndef)["records"][0]["titles"] == {"de": "Kaffee"}


def test_write_with_no_tag_or_no_reader_says_what_to_do(tmp_path: Path) -> None:
    cfg = _writer_config(tmp_path, free_udp_port())
    res = _nfc("write", "--config", cfg, "--uri", LINK, "--wait", "1.5")
    assert res.returncode == 1 and "no tag on the reader within 1.5 s" in res.stderr
    res = _nfc("write", "--config", cfg, "--reader", "usb:054c:06c3", "--uri", LINK)
    assert res.returncode == 1 and "no NFC reader at 'usb:054c:06c3'" in res.stderr
    assert "Traceback" not in res.stderr


# --- through the agent ---------------------------------------------------------------------


def test_agent_turns_taps_into_events_in_the_outbox(
        tmp_path: Path, emulator: TagEmulator, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="", extra=f"""
[qr]
domains = ["shop.example"]
[nfc]
enabled = true
reader = "udp:127.0.0.1:{emulator.port}"
targets = ["106A", "212F"]
loyalty_cards = ["02fe0000000000aa=card-17"]
""")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["nfc"]["reader"]["state"] == "ready", 30)
    emulator.present(ntag213(SHELF_UID, POSTER))
    wait_for(lambda: agent.status()["nfc"]["taps"] == 1, 20)
    emulator.remove()
    time.sleep(0.5)
    emulator.present(felica(bytes.fromhex("02fe0000000000aa")))
    wait_for(lambda: agent.status()["nfc"]["taps"] == 2, 20)
    assert agent.stop() == 0
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    taps = [e for e in map(json.loads, res.stdout.splitlines()) if e["type"] == "o2o.nfc.tap"]
    assert [t["data"]["tag"]["kind"] for t in taps] == ["unregistered", "loyalty"]
    assert taps[0]["data"]["records"][0]["uri"] == LINK
    assert taps[1]["data"]["tag"] == {"id": "02fe0000000000aa", "kind": "loyalty",
                                      "label": "card-17"}
    assert SHELF_UID.hex() not in res.stdout.lower()
