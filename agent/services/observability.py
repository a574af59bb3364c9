"""The agent seen from outside: the Prometheus endpoint and the telemetry message (health,
with today's KPI summary) published upstream at an interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from agent.config import MetricsConfig
from agent.contracts.status import Status
from agent.kpi import now_day, summary
from agent.metrics import AgentCollector, publish_telemetry, serve
from agent.metrics_server import MetricsServer

log = logging.getLogger(__name__)


class Telemetry(Protocol):
    def publish_telemetry(self, payload: bytes) -> None: ...


class DayKpis(Protocol):
    def day(self, day_start: int) -> dict[str, list[float]]: ...
    def flush(self) -> int: ...


class Spawner(Protocol):
    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None: ...


class Observability:
    def __init__(self, cfg: MetricsConfig, collector: AgentCollector,
                 status: Callable[[], Status], kpis: DayKpis,
                 uplink: Telemetry | None, components: Spawner,
                 today: Callable[[], int] = now_day) -> None:
        self._cfg = cfg
        self._today = today  # the store's day (agent/kpi.py Kpis.today)
        self._collector = collector
        self._status = status
        self._kpis = kpis
        self._uplink = uplink
        self._components = components
        self._server: MetricsServer | None = None

    def start(self) -> None:
        """On the event loop: the endpoint is served there."""
        m = self._cfg
        if m.listen:
            try:
                self._server = serve(self._collector, m.listen)
            except OSError as exc:  # a taken port must not keep the agent from capturing
                log.warning("metrics endpoint %s not started: %s", m.listen, exc)
        uplink = self._uplink
        if uplink is not None and m.telemetry_interval_s:
            self._components.spawn("telemetry", lambda: publish_telemetry(
                self.with_kpis, uplink.publish_telemetry, m.telemetry_interval_s,
                self._kpis.flush))

    def with_kpis(self) -> Status:
        """Telemetry's copy of the status: today's KPI summary too."""
        doc = self._status().copy()
        doc["kpis_today"] = summary(self._kpis.day(self._today()))
        return doc

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
