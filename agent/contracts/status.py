"""The status document: what the bus's `status` op answers and `o2o-edge status --json`
prints, and what the metrics page, the telemetry message, doctor and the kiosk's staff screen
read from it.

TypedDicts (the document is built as plain dicts by each component and crosses the bus as
JSON): mypy checks every key a reader names against these. Sections a component adds only
when it runs (ble, nfc, qr, link, kpis_today) are NotRequired; a reader asks `in` first.
The keys are the wire format: renaming one breaks `status --json` readers in the field.
(No `from __future__ import annotations` here or in the other contracts: TypedDict reads
NotRequired from evaluated annotations only.)
"""

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast


class AgentInfo(TypedDict):
    version: str
    pid: int
    bootid: str
    store: str
    device: str
    uptime_s: float
    config: str  # where the configuration came from
    config_version: int | None  # the remote config applied, if any
    config_trial: bool  # a remote config on trial (rolled back if the uplink fails)
    # the agent process's resident memory (VmRSS, MiB); the QR camera's process reports its
    # own as qr.camera.rss_mib
    rss_mib: NotRequired[float]


class Reserve(TypedDict):
    held: bool
    bytes: int
    releases: int


class OutboxStatus(TypedDict, total=False):
    """The outbox file's figures (agent/outbox/reader.py) and its writer's; `error` alone
    when the file could not be read."""

    error: str
    path: str
    depth: int
    bytes: int
    file_bytes: int
    free_bytes: int
    oldest_age_s: float | None
    by_priority: dict[str, int]
    dropped: dict[str, int]  # by reason, in the file (since it was made)
    seq: int
    committed_this_boot: int
    transactions: int
    queued: int
    last_error: str
    quarantined: list[str]
    writer: str  # "running" or "stopped" (nothing is stored: restart the agent)
    dropped_this_boot: dict[str, int]
    reserve: Reserve


class DownstreamStatus(TypedDict):
    queued: int
    queued_bytes: int
    dropped: dict[str, int]


class UplinkStatus(TypedDict, total=False):
    """agent/uplink/drain.py status() and its stats; {"state": "disabled"} without one."""

    state: str  # connected, connecting, stopped, disabled, ...
    url: str  # without credentials
    protocol: str
    connected_since: float | None
    connects: int
    last_error: str
    last_refusal: str
    last_drop: str
    inflight_batches: int
    inflight_window: int
    batch_max_events: int
    batch_max_bytes: int
    published_events: int
    acked_events: int
    split_batches: int
    refused_batches: int
    refusals: dict[str, int]  # by MQTT reason name
    dropped: dict[str, int]
    rejected_too_large: int
    expired_batches: int
    oversized_downstream: int
    last_ack: float | None
    last_refusal_at: float | None
    read_errors: int
    downstream: DownstreamStatus


class ComponentHealth(TypedDict):
    """One supervised task (agent/supervisor.py)."""

    state: str
    last_error: str
    restarts: int
    since: float


class DriverStatus(TypedDict, total=False):
    """A touchpoint driver's own part (scanner, reader, camera); each has more of its own."""

    state: str
    mode: str
    reader: str
    source: str
    last_error: str
    recent_errors: list[str]
    restarts: int
    dropped: int
    adverts: int


class BleStatus(TypedDict, total=False):
    scanner: DriverStatus
    adverts: int
    beacon_frames: int
    anonymous: int
    registered_heard: int
    silent: list[str]


class NfcStatus(TypedDict, total=False):
    reader: DriverStatus
    taps: int
    incomplete: int
    malformed_ndef: int
    hostile_records: int


class Histogram(TypedDict):
    buckets: list[tuple[str, float]]  # (upper bound in seconds as text, count up to it)
    sum: float
    count: int


class QrStatus(TypedDict, total=False):
    camera: DriverStatus
    frames_decoded: int
    codes: int
    scans: int
    debounced: int
    rejected: int
    decode_errors: int
    decode_ms_avg: float | None
    decode_seconds: Histogram


class LinkStatus(TypedDict, total=False):
    """The store link's receiver (agent/storelink/receiver.py)."""

    applied: dict[str, int]  # "kind/scope" -> version
    accepted: dict[str, int]
    refused: dict[str, int]
    last_refusal: str
    failed: dict[str, int]
    last_failure: str
    commands: dict[str, int]
    reports_suppressed: int
    trusted_keys: list[str]
    waiting: dict[str, int]


class PosEndpointStatus(TypedDict):
    """The tills' HTTP endpoint (agent/pos/http.py): requests taken, and those refused before
    their body was read (no or a wrong token, over the rate, too large, or too slow: a
    request head or body not sent within the endpoint's deadline)."""

    listening: list[str]  # "HOST:PORT"
    requests: int
    unauthorized: int
    limited: int
    too_large: int
    slow_clients: int


class PosStatus(TypedDict):
    """The tills (agent/pos/service.py), since the start: sales and refunds recorded,
    receipts resent (answered again, counted once), a receipt id sent again with another body
    (conflicts), requests refused for their fields, offers redeemed and refused; the
    endpoint's part while [pos] is enabled."""

    sales: int
    refunds: int
    replayed: int
    conflicts: int
    refused: int
    offers_redeemed: int
    offers_refused: int
    endpoint: NotRequired[PosEndpointStatus]


class CatalogStatus(TypedDict):
    """The catalog in use (agent/catalog/store.py): its size, the snapshot it is and the
    document that last changed it, how old its prices are (the oldest and the newest price's
    age, by the issuing time of the documents that set them) and the parts a snapshot still
    waits for (0: none)."""

    products: int
    snapshot: str | None
    version: int | None
    applied_at: float | None
    prices_age_s: dict[str, float]  # "oldest", "newest"; {} for an empty catalog
    waiting_parts: int


class PrivacyStatus(TypedDict):
    withdrawn: int
    withheld_events: int


class BusStatus(TypedDict, total=False):
    """The local bus server's part (agent/bus/server.py status_part)."""

    socket: str
    clients: int
    subscribers: int
    requests: int
    event_types: int
    budget_bytes: int
    budget_peak_bytes: int
    refused_requests: dict[str, int]
    refused_events: dict[str, int]
    refused_connections: int
    evicted_connections: int
    lagged_subscribers: int
    stalled_connections: int


class StoreDbStatus(TypedDict):
    quarantined: list[str]
    last_error: str


class CommitHooks(TypedDict):
    failures: dict[str, int]  # by consumer
    kpi_ignored_values: int


class CertificateStatus(TypedDict):
    """The device's certificate for the broker and the agent's renewal of it
    (agent/enroll/renewal.py); present when the agent renews it."""

    file: str
    expires: float | None  # Unix time; None while it cannot be read
    renews_from: float | None  # when the agent starts asking the fleet's CA for a new one
    renewals: int  # renewed since the agent started
    requested: bool  # a request went out and no certificate for it was kept yet
    last_problem: str


class Status(TypedDict):
    agent: AgentInfo
    outbox: OutboxStatus
    uplink: UplinkStatus
    certificate: NotRequired[CertificateStatus]
    components: dict[str, ComponentHealth]
    ble: NotRequired[BleStatus]
    nfc: NotRequired[NfcStatus]
    qr: NotRequired[QrStatus]
    link: NotRequired[LinkStatus]
    catalog: NotRequired[CatalogStatus]
    pos: NotRequired[PosStatus]
    privacy: PrivacyStatus
    bus: BusStatus
    store_db: StoreDbStatus
    commit_hooks: CommitHooks
    kpis_today: NotRequired[dict[str, Any]]  # added to telemetry's copy only


class Telemetry(TypedDict):
    """The health message published on o2o/v1/{store}/{device}/telemetry (agent/metrics.py
    telemetry): a summary of the status document."""

    kpis_today: NotRequired[dict[str, Any]]
    time: float
    bootid: str
    uptime_s: float
    outbox_depth: int | None
    outbox_oldest_age_s: float | None
    dropped: dict[str, int] | None
    uplink_connects: int | None
    sent: int | None
    drivers: dict[str, str]  # driver -> state
    # when the device's certificate expires and how its renewal goes, where the agent renews
    # it: a fleet sees a device about to be locked out without scraping each one
    certificate: NotRequired[CertificateStatus]


def as_status(doc: object) -> Status:
    """A status document read off the wire, checked for what every reader relies on (the
    sections are objects); ValueError saying what is missing otherwise."""
    if not isinstance(doc, dict):
        raise ValueError("the status is not a JSON object")
    for key in ("agent", "outbox", "uplink", "components"):
        if not isinstance(doc.get(key), dict):
            raise ValueError(f"the status has no {key!r} section")
    return doc  # type: ignore[return-value]  # checked above; the rest is the agent's word


def trusted(doc: Status | Mapping[str, Any]) -> Status:
    """The agent's own document, as its components built it (no check: the producer is the
    agent itself, and the metrics page and telemetry read it every few seconds)."""
    return cast(Status, doc)
