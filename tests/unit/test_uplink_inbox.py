"""The downstream inbox: offered from another thread and back at once, bounded in bytes and
messages (drops counted by reason), handled one at a time per document kind in order, and
retained messages it dropped asked for again once it has drained."""

from __future__ import annotations

import asyncio
import threading

from agent.uplink.inbox import Downstream, Inbox, lane_of

BASE = "o2o/v1/store-1"


def msg(topic: str, size: int = 10, retained: bool = True) -> Downstream:
    return Downstream(f"{BASE}/{topic}", b"x" * size, "", b"", retained)


def test_lanes_are_document_kinds_blobs_go_with_content() -> None:
    assert lane_of(f"{BASE}/all/orders") == "orders"
    assert lane_of(f"{BASE}/dev-1/config") == "config"
    assert lane_of(f"{BASE}/all/blob/ab12") == "content"
    assert lane_of(f"{BASE}/all/content") == "content"
    assert lane_of(f"{BASE}/dev-1/cmd/ping") == "cmd"


def test_one_at_a_time_per_kind_in_order_other_kinds_beside() -> None:
    log: list[str] = []
    gate = asyncio.Event()

    async def handler(topic: str, payload: bytes, response: str, corr: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        log.append(f"start {name}")
        if name == "content":
            await gate.wait()  # a long install
        log.append(f"end {name}")

    async def main() -> None:
        inbox = Inbox(handler, lambda topics: None)
        inbox.bind(asyncio.get_running_loop())
        offered = threading.Thread(target=lambda: [
            inbox.offer(msg(t)) for t in ("all/content", "all/blob/ab", "all/orders")])
        offered.start()
        offered.join()
        for _ in range(20):
            await asyncio.sleep(0)
        # the orders went by while the install runs; the blob waits behind the bundle
        assert log == ["start content", "start orders", "end orders"]
        gate.set()
        while inbox.status()["queued"]:
            await asyncio.sleep(0.01)
        assert log[3:] == ["end content", "start ab", "end ab"]
        await inbox.close()

    asyncio.run(main())


def test_bounded_in_bytes_and_messages_drops_counted_and_asked_for_again() -> None:
    gate = asyncio.Event()
    asked: list[set[str]] = []

    async def handler(topic: str, payload: bytes, response: str, corr: bytes) -> None:
        await gate.wait()

    async def main() -> None:
        inbox = Inbox(handler, asked.append, max_bytes=1000, max_messages=3)
        assert not inbox.offer(msg("all/orders"))  # not running yet
        inbox.bind(asyncio.get_running_loop())
        assert inbox.offer(msg("all/blob/aa", 900))
        assert not inbox.offer(msg("all/blob/bb", 900))  # past the bytes
        assert inbox.offer(msg("all/orders", 10))
        assert inbox.offer(msg("dev-1/cmd/ping", 10, retained=False))
        assert not inbox.offer(msg("all/consent", 1))  # past the count
        assert not inbox.offer(msg("dev-1/cmd/status", 1, retained=False))
        st = inbox.status()
        assert st["queued"] == 3 and st["queued_bytes"] > 900
        assert st["dropped"] == {"not-running": 1, "inbox-full-bytes": 1,
                                 "inbox-full-messages": 2}
        assert asked == []  # nothing asked for again while full
        gate.set()
        while inbox.status()["queued"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        # the retained ones come back by subscribing anew; the command is gone
        assert asked == [{f"{BASE}/all/orders", f"{BASE}/all/blob/bb", f"{BASE}/all/consent"}]
        assert inbox.status()["queued_bytes"] == 0
        await inbox.close()

    asyncio.run(main())


def test_a_failing_handler_does_not_stop_its_lane() -> None:
    seen: list[str] = []

    async def handler(topic: str, payload: bytes, response: str, corr: bytes) -> None:
        seen.append(topic)
        if len(seen) == 1:
            raise RuntimeError("a fault of ours")

    async def main() -> None:
        inbox = Inbox(handler, lambda topics: None)
        inbox.bind(asyncio.get_running_loop())
        inbox.offer(msg("all/orders"))
        inbox.offer(msg("all/orders"))
        while inbox.status()["queued"]:
            await asyncio.sleep(0.01)
        assert len(seen) == 2
        await inbox.close()

    asyncio.run(main())


def test_an_empty_inbox_takes_one_message_larger_than_its_bound() -> None:
    async def handler(topic: str, payload: bytes, response: str, corr: bytes) -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        inbox = Inbox(handler, lambda topics: None, max_bytes=100)
        inbox.bind(asyncio.get_running_loop())
        assert inbox.offer(msg("all/blob/aa", 500))
        assert not inbox.offer(msg("all/orders", 10))
        while inbox.status()["queued"]:
            await asyncio.sleep(0.01)
        await inbox.close()

    asyncio.run(main())
