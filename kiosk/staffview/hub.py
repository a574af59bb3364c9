"""The staff view's side of the bus: one subscription for the whole server (the kiosk's
AgentLink: reconnects by itself, says when the agent is up or away) and one request
connection. The alert list is the agent's (op alerts): an o2o.staff.alert* event on the stream
only says that it changed — the events never carry the alert's text, which may name a
shopper — so the hub asks again and hands the new list to every open page (server-sent
events) through a small queue each; a page too slow to keep up is dropped and reconnects,
getting the whole state again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Final

from agent.contracts import alerts as al
from agent.contracts import events as ev
from agent.contracts.bus import CloudEvent, Op
from kiosk.errors import KioskError, KioskReason
from kiosk.link import AgentLink

log = logging.getLogger("o2o-edge.staff-view")

LISTENER_QUEUE: Final = 32  # messages a page may lag behind before it is dropped
MAX_LISTENERS: Final = 64  # open pages at once (a store's phones, each maybe twice)
# events after which the pickup queue has changed: a page fetches it again
QUEUE_EVENTS: Final = frozenset({ev.KIOSK_CHECKIN, ev.KIOSK_HANDOVER, ev.STAFF_ALERT})
# an alert event that should ring on the phones (a new alert, or one escalated)
RINGING: Final = frozenset({ev.STAFF_ALERT, ev.STAFF_ALERT_ESCALATED})

Message = dict[str, Any]


class Hub:
    def __init__(self, socket: Path, token: str = "", backoff_max_s: float = 2.0) -> None:
        """`token`: the staff bus token the agent asks of the alert ops."""
        self._token = token
        self.link = AgentLink(socket, self._on_event, self._on_state,
                              backoff_min_s=0.1, backoff_max_s=backoff_max_s)
        self.alerts: list[dict[str, Any]] = []
        self.open_alerts = 0
        self.agent_up = False
        self.agent_reason = "connecting"
        # the agent's refusal of the alert list (a bus_token it does not hold), "" when none:
        # the pages say so instead of showing an empty list as if all were quiet
        self.refused = ""
        self._listeners: set[asyncio.Queue[Message]] = set()
        self._refetch = asyncio.Event()
        self._ring_next = False
        self.counts = {"alert_fetches": 0, "dropped_listeners": 0}
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.link.run(), name="staff-view-bus"),
                       asyncio.create_task(self._fetcher(), name="staff-view-alerts")]

    async def stop(self) -> None:
        for task in self._tasks:
            # asyncio.wait_for in 3.11 can swallow a cancel that lands as its wait ends: ask
            # again until the task is done
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
        await self.link._drop()

    # --- the bus -------------------------------------------------------------------------

    def _on_state(self, up: bool, reason: str) -> None:
        self.agent_up, self.agent_reason = up, reason
        self._send({"type": "agent", "up": up, "reason": reason})
        if up:  # what changed while we were away
            self._refetch.set()

    def _on_event(self, event: CloudEvent) -> None:
        kind = event.get("type", "")
        if kind.startswith(ev.STAFF_PREFIX):
            self._ring_next = self._ring_next or kind in RINGING
            self._refetch.set()
        if kind in QUEUE_EVENTS:
            self._send({"type": "queue"})

    async def _fetcher(self) -> None:
        """One fetch at a time; events arriving meanwhile make one more, not one each."""
        while True:
            await self._refetch.wait()
            self._refetch.clear()
            ring, self._ring_next = self._ring_next, False
            try:
                reply = await self.link.request({"op": al.OP_ALERTS,
                                                 al.TOKEN_FIELD: self._token})
            except KioskError as exc:
                log.warning("staff view: alerts not fetched: %s", exc)
                if exc.reason is KioskReason.AGENT_REFUSED and str(exc) != self.refused:
                    self.refused = str(exc)
                    self._send({"type": "agent", "up": self.agent_up, "refused": self.refused})
                continue  # the link's reconnect sets _refetch again
            if self.refused:
                self.refused = ""
                self._send({"type": "agent", "up": self.agent_up, "refused": ""})
            self.counts["alert_fetches"] += 1
            rows = reply.get("alerts")
            self.alerts = [a for a in rows if isinstance(a, dict)] \
                if isinstance(rows, list) else []
            self.open_alerts = int(reply.get("open") or 0)
            self._send({"type": "alerts", "ring": ring, **self.alerts_message()})

    def alerts_message(self) -> Message:
        return {"alerts": self.alerts, "open": self.open_alerts, "now": time.time()}

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A bus request; KioskError when the agent is away or refuses."""
        return await self.link.request(obj)

    async def ack(self, alert_id: str, by: str, close: bool) -> dict[str, Any]:
        op = al.OP_ALERT_CLOSE if close else al.OP_ALERT_ACK
        reply = await self.request({"op": op, "id": alert_id, "by": by,
                                    al.TOKEN_FIELD: self._token})
        self._refetch.set()  # the event comes too; this page should not wait for it
        return reply

    async def overview(self) -> Message:
        """The pickup queue, today's numbers and a health summary, each or its problem."""
        out: Message = {"agent": {"up": self.agent_up, "reason": self.agent_reason,
                                  "refused": self.refused}}
        for key, req in (("queue", {"op": Op.QUEUE, "limit": 50}), ("kpis", {"op": Op.KPIS}),
                         ("status", {"op": Op.STATUS})):
            try:
                reply = await self.request(req)
            except KioskError as exc:
                out[key] = {"error": str(exc)}
                continue
            out[key] = health(reply.get("status")) if key == "status" else \
                {k: v for k, v in reply.items() if k not in ("ok", "req")}
        if isinstance(out.get("queue"), dict):  # a board for staff: names are fine here
            out["queue"]["now"] = time.time()
        return out

    # --- the pages -----------------------------------------------------------------------

    def listen(self) -> asyncio.Queue[Message] | None:
        """A queue of messages for one page; None when too many pages are open."""
        if len(self._listeners) >= MAX_LISTENERS:
            return None
        q: asyncio.Queue[Message] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.add(q)
        return q

    def close_pages(self) -> None:
        """Every open page's stream ends (the server stops)."""
        for q in list(self._listeners):
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
            q.put_nowait({"type": "bye"})
        self._listeners.clear()

    def unlisten(self, q: asyncio.Queue[Message]) -> None:
        self._listeners.discard(q)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def _send(self, msg: Message) -> None:
        for q in list(self._listeners):
            try:
                q.put_nowait(msg)
            except asyncio.QueueFull:
                # the page is not reading: it is told to go, and reconnects for the whole state
                self._listeners.discard(q)
                self.counts["dropped_listeners"] += 1
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait({"type": "bye"})


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def health(st: Any) -> Message:
    """The agent's status as a few lines for a phone: uplink, outbox, each reader."""
    st = _d(st)
    u, o = _d(st.get("uplink")), _d(st.get("outbox"))
    items = [{"name": "uplink", "state": str(u.get("state", "?")),
              "ok": u.get("state") in ("connected", "disabled")},
             {"name": "outbox", "state": f"{o.get('depth', '?')} waiting",
              "ok": not o.get("error") and o.get("writer", "running") == "running"}]
    for section, part, name in (("ble", "scanner", "BLE scanner"), ("nfc", "reader", "NFC reader"),
                                ("qr", "camera", "camera")):
        if section in st:
            state = str(_d(_d(st[section]).get(part)).get("state", "?"))
            items.append({"name": name, "state": state,
                          "ok": state not in ("failed", "down", "error", "stopped")})
    return {"items": items}
