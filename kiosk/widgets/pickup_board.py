"""The "ready for pickup" board on the attract loop, when the content bundle asks for it
(manifest `pickup_board`): the order numbers of checked-in shoppers whose orders are ready,
from the agent's pickup queue — never a name, on a screen anyone walking past can read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from textual import work
from textual.widgets import Static

from agent.contracts.bus import Op
from kiosk.errors import KioskError
from kiosk.safe_text import NAME_MAX, plain

if TYPE_CHECKING:
    from kiosk.app import KioskApp

REFRESH_S: Final = 10.0
SHOWN_MAX: Final = 12  # order numbers on the board; a longer queue is the counter's job


def ready_orders(reply: dict[str, Any]) -> list[str]:
    """The order numbers to show from a queue answer: ready ones, longest waiting first."""
    rows = reply.get("queue")
    out: list[str] = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("status") == "ready" \
                and isinstance(row.get("order_id"), str):
            order = plain(row["order_id"], NAME_MAX)
            if order and order not in out:
                out.append(order)
    return out[:SHOWN_MAX]


class PickupBoard(Static):
    def __init__(self) -> None:
        super().__init__("", id="pickup-board", markup=False)
        self.orders: list[str] = []
        self.display = False  # shown once there is an order to show

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def on_mount(self) -> None:
        self.refresh_board()
        self.set_interval(REFRESH_S, self.refresh_board)

    @work(group="pickup-board", exclusive=True, exit_on_error=False)
    async def refresh_board(self) -> None:
        if not self.kiosk.agent_up:
            self.show([])
            return
        try:
            reply = await self.kiosk.link.request({"op": Op.QUEUE, "limit": 50})
        except KioskError:
            return  # the last board stays until the agent answers again
        self.show(ready_orders(reply))

    def show(self, orders: list[str]) -> None:
        self.orders = orders
        self.display = bool(orders)
        if orders:
            title = self.kiosk.translator("board.title")
            self.update(f"{title}:  " + "   ".join(orders))
