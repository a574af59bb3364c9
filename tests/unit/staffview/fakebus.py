"""A stand-in agent on a Unix socket speaking the bus contract for the staff view's ops:
alerts, alert-ack, alert-close, queue, kpis, status, handover, subscribe (events pushed with
`push`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from agent.contracts import bus as proto


class FakeAgent:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.alerts: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._subscribers: list[asyncio.StreamWriter] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None
        self.subscribed = asyncio.Event()
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.checkin_alert = "AL-P"  # the alert id a check-in's answer gives
        self.token: str | None = None  # the staff bus token it asks of the alert ops, if any

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self._subscribers.clear()
        for w in self._writers:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        await self._server.wait_closed()

    def raise_alert(self, alert_id: str, kind: str = "call-staff", subject: str = "Kiosk 2",
                    cause: str | None = None) -> None:
        self.alerts[alert_id] = {
            "id": alert_id, "kind": kind, "subject": subject, "ref": {}, "cause": cause,
            "created": time.time(), "state": "open", "level": 0, "escalate_at": None,
            "acknowledged_by": None, "acknowledged_at": None, "closed_by": None,
            "closed_at": None}
        self.push("o2o.staff.alert", {"alert": alert_id, "kind": kind, "ref": {},
                                      "cause": cause, "level": 0})

    def push(self, event_type: str, data: dict[str, Any]) -> None:
        line = proto.encode({"event": {"type": event_type, "data": data, "seq": 1}})
        for w in self._subscribers:
            w.write(line)

    def _answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg["op"]
        if op == "alerts":
            rows = list(self.alerts.values())
            return {"alerts": rows, "open": sum(a["state"] != "closed" for a in rows),
                    "limit": 50}
        if op in ("alert-ack", "alert-close"):
            a = self.alerts.get(msg["id"])
            if a is None:
                return {"outcome": "unknown-alert", "error": "no such alert"}
            if op == "alert-ack":
                a.update(state="acknowledged", acknowledged_by=msg["by"],
                         acknowledged_at=time.time())
                self.push("o2o.staff.alert.acknowledged", {"alert": a["id"], "kind": a["kind"],
                                                           "by": msg["by"], "response_s": 1.0})
                return {"outcome": "acknowledged", "alert": a}
            a.update(state="closed", closed_by=msg["by"], closed_at=time.time())
            return {"outcome": "closed", "alert": a}
        if op == "queue":
            return {"queue": [{"order_id": "A-1042", "first_name": "Anna", "status": "ready",
                               "checked_in_at": time.time() - 200}], "total": 1, "limit": 50}
        if op == "kpis":
            return {"day": 0, "hourly": {}, "summary": {"checkins": 3, "taps": 12}}
        if op == "status":
            return {"status": {"uplink": {"state": "connected"}, "outbox": {"depth": 0}}}
        if op == "emit":
            ids = [f"EVT-{len(self.requests)}-{i}" for i, _ in enumerate(msg["events"])]
            self.emitted += [(i, e) for i, e in zip(ids, msg["events"], strict=True)]
            return {"ids": ids, "seqs": [1] * len(ids)}
        if op == "checkin":  # the agent raises the arrival's alert and names it
            return {"result": {"outcome": "pickup.ok", "name": "Ben", "minutes": 4,
                               "alert": self.checkin_alert}}
        if op == "handover":
            return {"result": {"outcome": "handed-over"}}
        return {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        while line := await reader.readline():
            msg = json.loads(line)
            self.requests.append(msg)
            if msg["op"].startswith("alert") and self.token is not None and \
                    msg.get("token") != self.token:
                writer.write(proto.encode({"req": msg["req"], "ok": False, "reason": "forbidden",
                                           "error": "alerts is for staff tools"}))
                await writer.drain()
                continue
            writer.write(proto.encode({"req": msg["req"], "ok": True, **self._answer(msg)}))
            if msg["op"] == "subscribe":
                self._subscribers.append(writer)
                self.subscribed.set()
            await writer.drain()
