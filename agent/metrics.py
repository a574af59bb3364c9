"""Health as Prometheus metrics on localhost, and the same health on MQTT `…/telemetry`.

Metrics are read from the agent's status when scraped (nothing extra on the capture path)
except the per-type event counts, which the commit hook adds up. Served by prometheus-client
on [metrics] listen (127.0.0.1:9464 by default; "" turns it off).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

HEALTHY = {"scanning", "ready", "tag-present", "capturing", "finished", "ended"}


def driver_states(st: dict[str, Any]) -> dict[str, str]:
    out = {}
    if "ble" in st:
        out["ble"] = str(st["ble"]["scanner"].get("state"))
    if "nfc" in st:
        out["nfc"] = str(st["nfc"]["reader"].get("state"))
    if "qr" in st:
        out["camera"] = str(st["qr"]["camera"].get("state"))
    return out


class AgentCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status
        self.committed: Counter[str] = Counter()

    def count_committed(self, types: list[str]) -> None:
        self.committed.update(types)

    def collect(self) -> Iterator[Metric]:
        st = self.status()
        a, o, u = st["agent"], st["outbox"], st["uplink"]
        info = GaugeMetricFamily("o2o_agent_info", "The agent's version, store and device",
                                 labels=["version", "store", "device"])
        info.add_metric([a["version"], a["store"], a["device"]], 1)
        yield info
        yield GaugeMetricFamily("o2o_agent_uptime_seconds", "Seconds since the agent started",
                                value=a["uptime_s"])
        yield GaugeMetricFamily("o2o_outbox_depth", "Events waiting in the outbox",
                                value=o.get("depth", 0) or 0)
        yield GaugeMetricFamily("o2o_outbox_oldest_age_seconds",
                                "Age of the oldest waiting event",
                                value=o.get("oldest_age_s") or 0)
        yield GaugeMetricFamily("o2o_outbox_bytes", "Bytes of waiting events",
                                value=o.get("bytes", 0) or 0)
        c = CounterMetricFamily("o2o_events_committed", "Events committed to the outbox "
                                "since start, by type", labels=["type"])
        for etype, n in sorted(self.committed.items()):
            c.add_metric([etype], n)
        yield c
        d = CounterMetricFamily("o2o_events_dropped", "Events dropped by the outbox's quota "
                                "and TTL policy since start, by reason", labels=["reason"])
        for reason, n in sorted((o.get("dropped_this_boot") or {}).items()):
            d.add_metric([reason], n)
        yield d
        yield CounterMetricFamily("o2o_events_sent", "Events acknowledged by the broker",
                                  value=u.get("acked_events", 0))
        up = GaugeMetricFamily("o2o_uplink_connected", "1 while the MQTT uplink is connected",
                               value=1 if u.get("state") == "connected" else 0)
        yield up
        yield CounterMetricFamily("o2o_uplink_connects", "MQTT connections made since start",
                                  value=u.get("connects", 0))
        drv = GaugeMetricFamily("o2o_driver_up", "1 while a touchpoint driver is working",
                                labels=["driver", "state"])
        for name, state in driver_states(st).items():
            drv.add_metric([name, state], 1 if state in HEALTHY else 0)
        yield drv
        if "qr" in st and st["qr"].get("decode_ms_avg") is not None:
            yield GaugeMetricFamily("o2o_qr_decode_ms", "Mean QR decode time per frame",
                                    value=st["qr"]["decode_ms_avg"])
        if "nfc" in st:
            yield CounterMetricFamily("o2o_nfc_taps", "NFC taps read since start",
                                      value=st["nfc"]["taps"])


def serve(collector: AgentCollector, listen: str) -> Any:
    """Start the HTTP endpoint; returns the server (shut down with .shutdown())."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return server


def telemetry(st: dict[str, Any]) -> dict[str, Any]:
    """The health document published on …/telemetry (with today's KPIs when given)."""
    o, u = st["outbox"], st["uplink"]
    extra = {"kpis_today": st["kpis_today"]} if "kpis_today" in st else {}
    return {**extra, "time": round(time.time(), 3), "bootid": st["agent"]["bootid"],
            "uptime_s": st["agent"]["uptime_s"], "outbox_depth": o.get("depth"),
            "outbox_oldest_age_s": o.get("oldest_age_s"), "dropped": o.get("dropped_this_boot"),
            "uplink_connects": u.get("connects"), "sent": u.get("acked_events"),
            "drivers": driver_states(st)}


async def publish_telemetry(status: Callable[[], dict[str, Any]],
                            publish: Callable[[bytes], object], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            publish(json.dumps(telemetry(status()), separators=(",", ":")).encode())
        except Exception:  # telemetry must never take the agent down
            log.debug("telemetry not published", exc_info=True)
