"""The attract loop's "ready for pickup" board: only when the bundle asks for it, order
numbers of ready orders only, never a name."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from agent.contracts.content_manifest import ManifestError, parse_manifest
from kiosk.app import KioskApp
from kiosk.settings import BusSection, KioskSettings
from kiosk.widgets.pickup_board import PickupBoard, ready_orders
from simulators.scenario.shopper import until
from tests.unit.staffview.fakebus import FakeAgent

PAGE = {"id": "p", "title": {"en": "T"}, "text": {"en": "x"}, "link": "https://shop.example/p"}


def test_the_manifest_flag_is_off_unless_set_and_must_be_a_boolean() -> None:
    assert parse_manifest({"version": 1, "pages": [PAGE]}).pickup_board is False
    assert parse_manifest({"version": 1, "pages": [PAGE], "pickup_board": True}).pickup_board
    with pytest.raises(ManifestError, match="pickup_board"):
        parse_manifest({"version": 1, "pages": [PAGE], "pickup_board": "yes"})


def test_only_ready_orders_by_number() -> None:
    reply = {"queue": [{"order_id": "A-1", "first_name": "Anna", "status": "ready"},
                       {"order_id": "B-2", "first_name": "Ben", "status": "preparing"},
                       {"order_id": "C-[b]3", "status": "ready"}, {"status": "ready"}]}
    assert ready_orders(reply) == ["A-1", "C-[b]3"]


@pytest.mark.parametrize("asked", [True, False])
def test_the_board_shows_when_the_bundle_asks(tmp_path: Path, asked: bool) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        app = KioskApp(KioskSettings(bus=BusSection(socket=agent.path)))
        app.bundle = dataclasses.replace(app.bundle, pickup_board=asked)
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: app.agent_up, what="agent link up")
            boards = app.screen.query(PickupBoard)
            if not asked:
                assert not boards
            else:
                board = boards.first()
                board.refresh_board()
                await until(pilot, lambda: board.display, what="the board")
                text = str(board.render())
                assert "A-1042" in text and "Anna" not in text
        await agent.stop()

    asyncio.run(main())
