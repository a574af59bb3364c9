"""The staff queue says how many orders wait beyond the rows it shows: those the agent did
not send (its `queue` answer is limited, `total` counts them all) and those below the
table's last row on this screen."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Static

from kiosk.screens.staff import StaffScreen, fill_queue
from tests.snapshots.kiosk_screens import kiosk


def _orders(n: int) -> list[dict[str, object]]:
    return [{"order_id": f"A-{i:04d}", "first_name": "Ann", "checked_in_at": 0.0}
            for i in range(n)]


def test_the_queue_says_how_many_more_wait() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(100, 30)) as pilot:
            app.enter_staff_mode()
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, StaffScreen)
            table = screen.query_one("#queue", DataTable)
            heading = screen.query_one("#queue-heading", Static)

            def show(sent: int, total: int) -> str:
                fill_queue(table, _orders(sent), now=60.0)
                screen.queue_total = total
                screen.show_more()
                return str(heading.render())

            fits = table.size.height - table.header_height
            assert 0 < fits < 25, "the table fits every row: this tells nothing"
            # the agent sent 25 of 40: the rows on screen and the words add up to 40
            assert show(25, 40) == f"Pickup queue · {40 - fits} more"
            assert show(2, 2) == "Pickup queue"  # all on screen: nothing more to say
            assert show(fits, fits) == "Pickup queue"
            assert show(fits + 1, fits + 1) == "Pickup queue · 1 more"
            assert show(0, 0) == "Pickup queue"
    asyncio.run(run())
