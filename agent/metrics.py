"""Health as Prometheus metrics on localhost, and the same health on MQTT `…/telemetry`.

Metrics are read from the agent's status when scraped (nothing extra on the capture path)
except the per-type event counts, which the commit hook adds up. Served on [metrics] listen
(127.0.0.1:9464 by default; "" turns it off) by agent/metrics_server.py, on the event loop.

Names follow Prometheus' conventions (`promtool check metrics` is clean): base units
(seconds, bytes), counters exposed with `_total`, and labels of bounded cardinality — the
event types counted are capped, later ones are added up under "other".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from agent.contracts.status import Status, Telemetry, trusted
from agent.metrics_server import MetricsServer, bind

log = logging.getLogger(__name__)

# distinct event types with a series of their own: the agent's and the kiosk's types are a
# few dozen; whatever comes after the cap is counted under OTHER_TYPE, so a client inventing
# types cannot grow the page (each series is kept for the agent's life)
MAX_TYPE_SERIES: Final = 64
MAX_TYPE_LABEL: Final = 100  # characters; a longer type is counted under OTHER_TYPE
OTHER_TYPE: Final = "other"
# series per reason-labelled counter of the status (the reasons are the code's own, a few
# dozen at most); a guard, so that no status field can grow the page
MAX_REASON_SERIES: Final = 32

# what the runtime hands over: its status() (typed Status once every builder returns one)
StatusSource = Callable[[], Status | Mapping[str, Any]]

HEALTHY = {"scanning", "ready", "tag-present", "capturing", "finished", "ended"}


def driver_states(st: Status) -> dict[str, str]:
    out = {}
    if "ble" in st:
        out["ble"] = str(st["ble"]["scanner"].get("state"))
    if "nfc" in st:
        out["nfc"] = str(st["nfc"]["reader"].get("state"))
    if "qr" in st:
        out["camera"] = str(st["qr"]["camera"].get("state"))
    return out


def certificate_expiry(path: str) -> float | None:
    """When the PEM certificate at `path` expires (Unix time); None without one, or when it
    cannot be read (doctor says why)."""
    if not path:
        return None
    from cryptography import x509  # only for a device with a certificate of its own

    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.timestamp()


class AgentCollector(Collector):
    def __init__(self, status: StatusSource, cert_file: str = "") -> None:
        self.status = status
        # read again when the file changes: the agent renews its certificate in place
        self.cert_file = cert_file
        self._cert_seen: tuple[int, int] | None = None  # (mtime_ns, inode) last read
        self.cert_expiry = certificate_expiry(cert_file)
        self.committed: Counter[str] = Counter()
        # counted on the outbox writer's thread, read on the loop: a new key while the page
        # iterates would raise there
        self._lock = threading.Lock()

    def _reread_certificate(self) -> None:
        """A stat per scrape; the certificate is parsed only when it was replaced."""
        if not self.cert_file:
            return
        try:
            st = os.stat(self.cert_file)
        except OSError:
            return  # gone for a moment (being replaced): the last figure stands
        seen = (st.st_mtime_ns, st.st_ino)
        if seen != self._cert_seen:
            self._cert_seen = seen
            self.cert_expiry = certificate_expiry(self.cert_file)

    def count_committed(self, types: list[str]) -> None:
        committed = self.committed
        with self._lock:
            for etype in types:
                if etype not in committed and (len(committed) >= MAX_TYPE_SERIES
                                               or len(etype) > MAX_TYPE_LABEL):
                    etype = OTHER_TYPE
                committed[etype] += 1

    def collect(self) -> Iterator[Metric]:
        st = trusted(self.status())
        a, o, u = st["agent"], st["outbox"], st["uplink"]
        info = GaugeMetricFamily("o2o_agent_info", "The agent's version, store and device",
                                 labels=["version", "store", "device"])
        info.add_metric([a["version"], a["store"], a["device"]], 1)
        yield info
        yield GaugeMetricFamily("o2o_agent_uptime_seconds", "Seconds since the agent started",
                                value=a["uptime_s"])
        self._reread_certificate()
        if self.cert_expiry is not None:
            yield GaugeMetricFamily("o2o_mqtt_certificate_expiry_timestamp_seconds",
                                    "When the device's certificate for the broker expires "
                                    "(Unix time)", value=self.cert_expiry)
        if "certificate" in st:  # the agent renews it
            yield CounterMetricFamily("o2o_mqtt_certificate_renewals",
                                      "Certificates renewed by the agent since it started",
                                      value=st["certificate"]["renewals"])
        yield GaugeMetricFamily("o2o_outbox_depth", "Events waiting in the outbox",
                                value=o.get("depth", 0) or 0)
        yield GaugeMetricFamily("o2o_outbox_oldest_age_seconds",
                                "Age of the oldest waiting event",
                                value=o.get("oldest_age_s") or 0)
        yield GaugeMetricFamily("o2o_outbox_bytes", "Bytes of waiting events",
                                value=o.get("bytes", 0) or 0)
        c = CounterMetricFamily("o2o_events_committed", "Events committed to the outbox "
                                "since start, by type", labels=["type"])
        with self._lock:
            committed = sorted(self.committed.items())
        for etype, n in committed:
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
        # the uplink's refusals and drops, by reason (a fixed set of MQTT 5 reason names)
        for name, doc, counts in (
                ("o2o_uplink_refusals", "Messages the broker refused, by reason",
                 u.get("refusals")),
                ("o2o_uplink_dropped", "Events the broker refused alone for good, dropped",
                 u.get("dropped"))):
            fam = CounterMetricFamily(name, doc, labels=["reason"])
            for reason, n in sorted((counts or {}).items()):
                fam.add_metric([reason], n)
            yield fam
        yield CounterMetricFamily("o2o_uplink_downstream_oversized", "Downstream messages over "
                                  "the agent's size limit, dropped unread",
                                  value=u.get("oversized_downstream", 0))
        yield CounterMetricFamily("o2o_uplink_outbox_read_errors", "Outbox reads of the uplink "
                                  "that failed (retried)", value=u.get("read_errors", 0))
        yield from refusal_metrics(st)
        drv = GaugeMetricFamily("o2o_driver_up", "1 while a touchpoint driver is working",
                                labels=["driver", "state"])
        for name, state in driver_states(st).items():
            drv.add_metric([name, state], 1 if state in HEALTHY else 0)
        yield drv
        hist = st.get("qr", {}).get("decode_seconds")
        if hist is not None:
            yield HistogramMetricFamily(
                "o2o_qr_decode_seconds", "Time to decode one camera frame",
                buckets=[(le, n) for le, n in hist["buckets"]], sum_value=hist["sum"])
        if "nfc" in st:
            yield CounterMetricFamily("o2o_nfc_taps", "NFC taps read since start",
                                      value=st["nfc"]["taps"])
        yield from commerce_metrics(st)


class EndpointCollector(Collector):
    """The endpoint's own refusal counts, given when it is made (`serve`): the server is
    made after the registry it serves, so they are a collector of their own."""

    REASONS: Final = ("busy", "evicted", "timeout", "too-large", "bad-request", "not-found",
                      "closed", "error")

    def __init__(self, refused: Mapping[str, int]) -> None:
        self._refused = refused  # counted and read on the event loop

    def collect(self) -> Iterator[Metric]:
        r = CounterMetricFamily("o2o_metrics_connections_refused", "Connections to this "
                                "endpoint let go without a page, by reason",
                                labels=["reason"])
        for reason in self.REASONS:
            r.add_metric([reason], self._refused.get(reason, 0))
        yield r


def _labelled(name: str, doc: str, label: str, counts: Any) -> CounterMetricFamily:
    """A counter by `label` from a status mapping: its keys are the code's own reasons, yet
    at most MAX_REASON_SERIES series of short labels, the rest added up under OTHER_TYPE."""
    fam = CounterMetricFamily(name, doc, labels=[label])
    if not isinstance(counts, dict):
        return fam
    kept: dict[str, float] = {}
    for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        key = str(key)
        if len(kept) >= MAX_REASON_SERIES or len(key) > MAX_TYPE_LABEL:
            key = OTHER_TYPE
        kept[key] = kept.get(key, 0) + (n if isinstance(n, int | float) else 0)
    for key, n in kept.items():
        fam.add_metric([key], n)
    return fam


def refusal_metrics(st: Status) -> Iterator[Metric]:
    """What the agent refused, dropped, moved aside or failed at, from its status: the bus's
    refusals, the outbox writer's state, quarantines and disk reserve, the commit hooks'
    failures, the uplink's refused and expired batches and the store database's quarantine."""
    b, o, u = st.get("bus") or {}, st.get("outbox") or {}, st.get("uplink") or {}
    yield _labelled("o2o_bus_requests_refused", "Bus requests refused, by reason", "reason",
                    b.get("refused_requests"))
    yield _labelled("o2o_bus_events_refused", "Events refused at the bus's edge, by reason",
                    "reason", b.get("refused_events"))
    for name, doc, count in (
            ("o2o_bus_connections_refused", "Bus connections refused at the connection cap",
             b.get("refused_connections")),
            ("o2o_bus_connections_evicted", "Idle bus connections closed to make room",
             b.get("evicted_connections")),
            ("o2o_bus_connections_stalled", "Bus connections closed for not reading answers",
             b.get("stalled_connections")),
            ("o2o_bus_subscribers_lagged", "Bus subscribers dropped over their backlog cap",
             b.get("lagged_subscribers"))):
        yield CounterMetricFamily(name, doc, value=count or 0)
    yield GaugeMetricFamily("o2o_bus_clients", "Bus connections open",
                            value=b.get("clients", 0) or 0)
    yield GaugeMetricFamily("o2o_bus_subscribers", "Bus subscribers (kiosk, tail) connected",
                            value=b.get("subscribers", 0) or 0)
    if "writer" in o:
        yield GaugeMetricFamily("o2o_outbox_writer_up", "1 while the outbox writer thread "
                                "runs (0: nothing is stored; restart the agent)",
                                value=1 if o["writer"] == "running" else 0)
    yield CounterMetricFamily("o2o_outbox_quarantined", "Damaged outbox files moved aside "
                              "since start", value=len(o.get("quarantined") or ()))
    reserve = o.get("reserve")
    if reserve:
        yield GaugeMetricFamily("o2o_outbox_reserve_held", "1 while the disk reserve is held "
                                "(0: released, the disk is full)",
                                value=1 if reserve.get("held") else 0)
        yield GaugeMetricFamily("o2o_outbox_reserve_bytes", "Size of the disk reserve",
                                value=reserve.get("bytes", 0) or 0)
        yield CounterMetricFamily("o2o_outbox_reserve_releases", "Times the disk reserve was "
                                  "released for a full disk", value=reserve.get("releases", 0))
    hooks = st.get("commit_hooks") or {}
    yield _labelled("o2o_commit_hook_failures", "Commit groups a consumer failed on, by "
                    "consumer", "hook", hooks.get("failures"))
    yield CounterMetricFamily("o2o_kpi_values_ignored", "Events whose values the KPI roll-ups "
                              "could not add up", value=hooks.get("kpi_ignored_values", 0) or 0)
    yield CounterMetricFamily("o2o_uplink_batches_refused", "Batches the broker refused "
                              "(PUBACK reason 0x80 or above)", value=u.get("refused_batches", 0))
    yield CounterMetricFamily("o2o_uplink_batches_expired", "Batches not acknowledged in "
                              "time (the uplink reconnected to have them sent again)",
                              value=u.get("expired_batches", 0))
    yield CounterMetricFamily("o2o_store_db_quarantined", "Damaged store databases moved "
                              "aside at start", value=len((st.get("store_db") or {}).get(
                                  "quarantined") or ()))


def commerce_metrics(st: Status) -> Iterator[Metric]:
    """The tills and the catalog, from their status sections: what was sold and redeemed, what
    the tills' endpoint refused by reason, and the catalog's size and the age of its prices."""
    if "pos" in st:
        p = st["pos"]
        for name, doc, n in (
                ("o2o_pos_sales", "Sales the tills recorded since start", p["sales"]),
                ("o2o_pos_refunds", "Refunds the tills recorded since start", p["refunds"]),
                ("o2o_pos_receipts_resent", "Receipts a till sent again (answered again, "
                 "counted once)", p["replayed"]),
                ("o2o_pos_offers_redeemed", "Offer codes redeemed at the tills",
                 p["offers_redeemed"]),
                ("o2o_pos_offers_refused", "Offer codes refused (used, expired, other store, "
                 "forged)", p["offers_refused"])):
            yield CounterMetricFamily(name, doc, value=n)
        refused = CounterMetricFamily("o2o_pos_requests_refused", "Till requests refused, by "
                                      "reason", labels=["reason"])
        e = p.get("endpoint")
        for reason, n in (("invalid", p["refused"]), ("conflict", p["conflicts"]),
                          *((("unauthorized", e["unauthorized"]), ("rate-limited", e["limited"]),
                             ("too-large", e["too_large"]), ("too-slow", e["slow_clients"]))
                            if e is not None else ())):
            refused.add_metric([reason], n)
        yield refused
    if "catalog" in st:
        c = st["catalog"]
        yield GaugeMetricFamily("o2o_catalog_products", "Products in the catalog",
                                value=c["products"])
        yield GaugeMetricFamily("o2o_catalog_parts_waiting", "Parts a catalog snapshot still "
                                "waits for", value=c["waiting_parts"])
        age = GaugeMetricFamily("o2o_catalog_price_age_seconds", "How old the catalog's "
                                "prices are (since the documents that set them were issued)",
                                labels=["price"])
        for which, seconds in sorted(c["prices_age_s"].items()):
            age.add_metric([which], seconds)
        yield age


def serve(collector: AgentCollector, listen: str) -> MetricsServer:
    """Start the HTTP endpoint on the running event loop; returns the server (stopped with
    .shutdown() and .server_close()). OSError when the address cannot be bound."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    server = MetricsServer(registry, bind(listen), asyncio.get_running_loop())
    registry.register(EndpointCollector(server.refused))
    return server


def telemetry(st: Status) -> Telemetry:
    """The health document published on …/telemetry (with today's KPIs when given)."""
    o, u = st["outbox"], st["uplink"]
    doc: Telemetry = {
        "time": round(time.time(), 3), "bootid": st["agent"]["bootid"],
        "uptime_s": st["agent"]["uptime_s"], "outbox_depth": o.get("depth"),
        "outbox_oldest_age_s": o.get("oldest_age_s"), "dropped": o.get("dropped_this_boot"),
        "uplink_connects": u.get("connects"), "sent": u.get("acked_events"),
        "drivers": driver_states(st)}
    if "certificate" in st:
        doc["certificate"] = st["certificate"]
    if "kpis_today" in st:
        # first, as before: a reader of the raw message finds today's numbers on top
        doc = {"kpis_today": st["kpis_today"], **doc}
    return doc


async def publish_telemetry(status: StatusSource,
                            publish: Callable[[bytes], object], interval_s: float,
                            prepare: Callable[[], object] | None = None) -> None:
    """Every `interval_s`: `prepare` in a worker thread (the KPI roll-ups written out, so that
    today's numbers are the latest: they are written every 30 s otherwise), then the status."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            if prepare is not None:
                await asyncio.to_thread(prepare)
            publish(json.dumps(telemetry(trusted(status())), separators=(",", ":")).encode())
        except Exception:  # telemetry must never take the agent down
            log.debug("telemetry not published", exc_info=True)
