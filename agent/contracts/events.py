"""Every event type the product emits: its name as a constant, the shape of its `data`, and
its outbox priority — one registry, read by the envelope (priorities), the KPI roll-ups, the
kiosk and the simulators.

Payloads are TypedDicts: at run time they are the plain dicts the hot path already builds (no
conversion, no allocation, nothing for the kiosk to load but the classes), and mypy checks
their keys wherever a producer or a reader names the type. A bus client may still emit types
of its own (a store's till, a test); those are not here and get their family's priority
(`priority_of`).

A unit test (tests/unit/contracts/test_events.py) scans the product's source: every type it
emits or reads is registered here, and every registered type is emitted somewhere.
"""

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple, NotRequired, TypedDict

# --- priorities: higher leaves the outbox first and is dropped last -----------------------

PRIORITY_CRITICAL: Final = 9
PRIORITY_HIGH: Final = 7
PRIORITY_NORMAL: Final = 5
PRIORITY_LOW: Final = 2

# --- the type names ------------------------------------------------------------------------

# the agent's own record (refused from the bus: agent/bus/limits.py RESERVED_PREFIXES)
AGENT_STARTED: Final = "o2o.agent.started"
AGENT_OUTBOX_DROPPED: Final = "o2o.agent.outbox.dropped"
AGENT_OUTBOX_QUARANTINED: Final = "o2o.agent.outbox.quarantined"
AGENT_OUTBOX_RESERVE: Final = "o2o.agent.outbox.reserve"
AGENT_STORE_DB_QUARANTINED: Final = "o2o.agent.store_db.quarantined"
AGENT_UPLINK_DROPPED: Final = "o2o.agent.uplink.dropped"
# touchpoints
BLE_PRESENCE: Final = "o2o.ble.presence"
BLE_FOOTFALL: Final = "o2o.ble.footfall"
BLE_BEACON_HEALTH: Final = "o2o.ble.beacon.health"
NFC_TAP: Final = "o2o.nfc.tap"
QR_SCAN: Final = "o2o.qr.scan"
# the kiosk (sent over the bus) and the store operations it asks the agent for
KIOSK_STARTED: Final = "o2o.kiosk.started"
KIOSK_VIEW: Final = "o2o.kiosk.view"
KIOSK_HANDOFF: Final = "o2o.kiosk.handoff"
KIOSK_SURVEY: Final = "o2o.kiosk.survey"
KIOSK_ASSIST: Final = "o2o.kiosk.assist"
KIOSK_STAFF: Final = "o2o.kiosk.staff"
KIOSK_SESSION: Final = "o2o.kiosk.session"
KIOSK_SERVE: Final = "o2o.kiosk.serve"
KIOSK_CHECKIN: Final = "o2o.kiosk.checkin"
KIOSK_HANDOVER: Final = "o2o.kiosk.handover"
KIOSK_RESERVE: Final = "o2o.kiosk.reserve"
# the store link (downstream documents and commands)
LINK_APPLIED: Final = "o2o.link.applied"
LINK_COMMAND: Final = "o2o.link.command"
LINK_CONFIG: Final = "o2o.link.config"
LINK_FAILED: Final = "o2o.link.failed"
LINK_REFUSED: Final = "o2o.link.refused"
LINK_WAITING: Final = "o2o.link.waiting"
# staff alerts (agent/contracts/alerts.py): raised, acknowledged, closed, escalated
STAFF_ALERT: Final = "o2o.staff.alert"
STAFF_ALERT_ACKNOWLEDGED: Final = "o2o.staff.alert.acknowledged"
STAFF_ALERT_CLOSED: Final = "o2o.staff.alert.closed"
STAFF_ALERT_ESCALATED: Final = "o2o.staff.alert.escalated"
# the store's tills (agent/pos/, agent/contracts/pos.py) and the offer codes' ledger
POS_SALE: Final = "o2o.pos.sale"
POS_REFUND: Final = "o2o.pos.refund"
OFFER_REDEEMED: Final = "o2o.offer.redeemed"
OFFER_REFUSED: Final = "o2o.offer.refused"
# privacy
PRIVACY_ERASED: Final = "o2o.privacy.erased"
PRIVACY_RETENTION: Final = "o2o.privacy.retention"

# families: the prefixes the bus reserves for the agent, and the priority of a type a bus
# client introduces under a family (each rule ranks at least one registered type: the test
# proves none is dead)
AGENT_PREFIX: Final = "o2o.agent."
# every kiosk event, the registered ones and a store's own (attribution links them to a visit)
KIOSK_PREFIX: Final = "o2o.kiosk."
LINK_PREFIX: Final = "o2o.link."
PRIVACY_PREFIX: Final = "o2o.privacy."
# only the agent raises, acknowledges and closes alerts: a bus client asks it (alert-ack)
STAFF_PREFIX: Final = "o2o.staff."
# sales and redemptions are checked, made idempotent and counted by the agent: a till asks
# it (bus op pos, or the POS endpoint), never emits them itself
POS_PREFIX: Final = "o2o.pos."
OFFER_PREFIX: Final = "o2o.offer."
RESERVED_PREFIXES: Final = (AGENT_PREFIX, PRIVACY_PREFIX, LINK_PREFIX, STAFF_PREFIX,
                            POS_PREFIX, OFFER_PREFIX)


# --- payloads ------------------------------------------------------------------------------

class AgentStarted(TypedDict):
    version: str
    pid: int
    config: str  # where the configuration came from


class OutboxDropped(TypedDict):
    dropped: dict[str, int]  # by reason (quota, ttl, ...)
    bytes: dict[str, int]
    by_type: dict[str, int]
    total_dropped: dict[str, int]


class Quarantined(TypedDict):
    """A damaged file (outbox or store.db) moved aside, and why."""

    moved_to: str
    reason: str


class OutboxReserve(TypedDict):
    status: Literal["released", "taken"]
    bytes: int


class UplinkDropped(TypedDict):
    dropped: dict[str, int]  # by broker reason since the last report
    total_dropped: dict[str, int]


class BlePresence(TypedDict):
    id: str  # the beacon's or the app's identity, never a MAC address
    action: Literal["enter", "zone", "exit"]
    at: float
    kind: NotRequired[str]  # beacon / app
    # enter and zone (agent/presence/tracker.py)
    zone: NotRequired[str]
    distance_m: NotRequired[float]
    distance_range_m: NotRequired[list[float]]
    rssi: NotRequired[float]
    # exit
    dwell_s: NotRequired[float]
    last_zone: NotRequired[str | None]
    sightings: NotRequired[int]


class BleFootfall(TypedDict):
    minute_start: int
    devices: int
    dwell_histogram: dict[str, int]


class BeaconHealth(TypedDict):
    beacon: str
    status: Literal["ok", "low-battery", "silent", "heard-again"]
    silent_for_s: NotRequired[float]
    # an Eddystone-TLM reading (drivers/ble/models.py EddystoneTLM.as_json)
    kind: NotRequired[str]
    battery_mv: NotRequired[int]
    temperature_c: NotRequired[float | None]
    adv_count: NotRequired[int]
    uptime_s: NotRequired[float]


class NfcTap(TypedDict):
    tag: dict[str, str]  # id (or anon: pseudonym), kind, label
    tag_type: str
    product: str
    records: list[dict[str, Any]]  # judged NDEF records (agent/qr_policy.py)
    ndef: Literal["none", "empty", "ok", "malformed", "incomplete"]
    read_ms: float
    reason: NotRequired[str]
    ndef_bytes: NotRequired[int]
    campaign: NotRequired[str]  # added by attribution
    visit: NotRequired[str]
    staff_test: NotRequired[bool]  # read in staff mode (agent/attribution.py)


# The classifier's verdict (drivers/qr/classify.py Verdict.as_json: "class" and "reason", and
# what the class adds) and the decode timings; "class" is a keyword, hence this form.
QrScan = TypedDict("QrScan", {
    "class": str, "reason": str, "decode_ms": float, "frame_age_ms": float,
    "length": int, "sha256": str, "campaign": str, "visit": str,
    "staff_test": bool,  # read in staff mode (agent/attribution.py)
}, total=False)


class KioskStarted(TypedDict):
    cols: int
    rows: int
    language: str
    content_version: int
    content_problem: str | None


class KioskView(TypedDict):
    page: str
    campaign: str | None
    medium: str
    language: str
    # the bundle's version, and the page's A/B variant shown (KPIs per variant:
    # agent/kpi_metrics.py; the variants: agent/contracts/content_variants.py)
    content_version: NotRequired[int]
    variant: NotRequired[str]
    first: NotRequired[bool]  # the shopper session's first view of the page
    # a personal offer shown on the home screen to the one opted-in app at the kiosk
    # (agent/contracts/offers.py): `page` is the offer's id
    personalised: NotRequired[bool]


class KioskHandoff(TypedDict):
    page: str
    campaign: str | None
    medium: str
    # the random token its link carries (o2o_h=, kiosk/handoff.py); the event's id: own_id
    token: NotRequired[str]
    content_version: NotRequired[int]
    variant: NotRequired[str]
    first: NotRequired[bool]  # the shopper session's first hand-off of the page


# a hand-off token: a ULID (time and 80 random bits) in Crockford's base32
HANDOFF_TOKEN_RE: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def own_id(event_type: str, data: Any) -> str | None:
    """The id an event brings for itself: a hand-off's token, so that web analytics can join
    the session its link opened to the interaction at the kiosk; None: the agent gives one."""
    if event_type != KIOSK_HANDOFF or not isinstance(data, dict):
        return None
    token = data.get("token")
    return token if isinstance(token, str) and HANDOFF_TOKEN_RE.fullmatch(token) else None


class KioskSurvey(TypedDict):
    score: int
    scale: int
    # a check-in's outcome ("pickup.ok"), "browse" (offers viewed, no check-in) or
    # "staff-call" (the shopper called staff)
    after: str
    content_version: NotRequired[int]
    # page id -> the A/B variant the shopper's session showed (content_variants.py)
    variants: NotRequired[dict[str, str]]


class KioskAssist(TypedDict):
    screen: str
    # the agent was away when the shopper pressed: the kiosk sent them to the counter and
    # sends the call later, for the record only (no alert: agent/services/alerts_watch.py)
    counter: NotRequired[bool]


class KioskStaff(TypedDict):
    action: Literal["enter", "leave", "pin-refused"]
    locked: NotRequired[bool]


class KioskSession(TypedDict):
    ended: str
    duration_s: float


class KioskServe(TypedDict):
    refused: dict[str, int]
    refused_total: dict[str, int]
    sessions: int
    max_sessions: int


class KioskCheckin(TypedDict, total=False):
    kind: str  # pickup, appointment, loyalty
    outcome: str
    via: str
    order: str
    appointment: str
    # as the kiosk asked it: the bundle's version and the session's A/B variants by page
    content_version: int
    variants: dict[str, str]


class KioskHandover(TypedDict):
    order: str
    waited_s: float | None


class KioskReserve(TypedDict):
    """A shopper at the kiosk's product card asked to reserve the product for pickup here
    (the platform makes the reservation; agent/contracts/catalog.py names the product)."""

    sku: str
    gtin: str | None
    price: int  # minor units, as the card showed it
    currency: str
    stock_here: int
    language: str


class LinkApplied(TypedDict):
    kind: str
    scope: str
    version: int


class LinkCommand(TypedDict):
    name: str  # the kiosk listens for "reload-content"


class LinkConfig(TypedDict):
    version: int | None
    state: Literal["restarting", "applied", "rolled-back"]
    live: NotRequired[bool]
    sections: NotRequired[list[str]]
    restarted: NotRequired[list[str]]
    reason: NotRequired[str]


class LinkProblem(TypedDict, total=False):
    """A refused or failed document or command (agent/storelink/reports.py throttles them)."""

    topic: str
    reason: str
    detail: str
    kind: str
    version: int
    response_topic: str
    suppressed: int


class LinkWaiting(TypedDict):
    kind: str
    scope: str
    version: int
    needs: int


class StaffAlert(TypedDict):
    """An alert raised (agent/contracts/alerts.py). No `subject`: it may name the shopper,
    which stays in the store; a staff view asks the agent (op alerts) for the text."""

    alert: str  # the alert's id
    kind: str  # an AlertKind value
    ref: dict[str, str]
    cause: str | None  # the id of the event that raised it
    level: int


class StaffAlertAcknowledged(TypedDict):
    alert: str
    kind: str
    by: str
    response_s: float  # raised -> acknowledged


class StaffAlertClosed(TypedDict):
    alert: str
    kind: str
    by: str
    response_s: float | None  # acknowledged -> closed; None: closed without an ack
    open_s: float  # raised -> closed


class StaffAlertEscalated(TypedDict):
    alert: str
    kind: str
    level: int
    waited_s: float  # raised -> now, unacknowledged


class PosLine(TypedDict, total=False):
    sku: str
    gtin: str
    qty: int
    amount: int  # minor units


class PosSale(TypedDict):
    """A sale or a refund at a till (agent/contracts/pos.py has the request it comes from).
    Loyalty cards and offer codes only as keyed hashes under the device's key."""

    receipt: str
    pos: str  # the till's name in [pos] tokens
    total: int  # minor units (cents)
    currency: str
    lines: list[PosLine]
    payment: str
    loyalty: NotRequired[str]  # keyed hash
    offers: NotRequired[list[str]]  # keyed hashes of the offers redeemed with it
    original: NotRequired[str]  # a refund's receipt refunded
    campaign: NotRequired[str]  # the first redeemed offer's; then attribution's
    visit: NotRequired[str]
    visit_campaign: NotRequired[str]
    visit_pickup: NotRequired[bool]  # the visit checked in a pickup: an add-on sale


class OfferRedeemed(TypedDict):
    code: str  # keyed hash of the code id
    campaign: str
    offer: str  # the offer text id
    receipt: str
    pos: str
    visit: NotRequired[str]
    visit_campaign: NotRequired[str]


class OfferRefused(TypedDict):
    reason: str  # offer-used, offer-expired, offer-other-store, offer-bad-signature, ...
    pos: str
    receipt: NotRequired[str]
    code: NotRequired[str]  # keyed hash, when the code could be read
    campaign: NotRequired[str]


class PrivacyErased(TypedDict):
    subject_sha256: str
    removed: dict[str, int]


class PrivacyRetention(TypedDict):
    removed: dict[str, int]


# --- the registry --------------------------------------------------------------------------

class EventSpec(NamedTuple):
    name: str
    payload: type[Mapping[str, object]]
    priority: int


def _spec(name: str, payload: Any, priority: int) -> tuple[str, EventSpec]:
    # Any: a TypedDict class is not a `type[Mapping]` to mypy, though it is one at run time
    return name, EventSpec(name, payload, priority)


REGISTRY: Final[Mapping[str, EventSpec]] = dict([
    _spec(AGENT_STARTED, AgentStarted, PRIORITY_CRITICAL),
    _spec(AGENT_OUTBOX_DROPPED, OutboxDropped, PRIORITY_CRITICAL),
    _spec(AGENT_OUTBOX_QUARANTINED, Quarantined, PRIORITY_CRITICAL),
    _spec(AGENT_OUTBOX_RESERVE, OutboxReserve, PRIORITY_CRITICAL),
    _spec(AGENT_STORE_DB_QUARANTINED, Quarantined, PRIORITY_CRITICAL),
    _spec(AGENT_UPLINK_DROPPED, UplinkDropped, PRIORITY_CRITICAL),
    # a check-in and a call for staff are a shopper waiting: they outrank everything
    _spec(KIOSK_CHECKIN, KioskCheckin, PRIORITY_CRITICAL),
    _spec(KIOSK_ASSIST, KioskAssist, PRIORITY_CRITICAL),
    _spec(KIOSK_HANDOVER, KioskHandover, PRIORITY_HIGH),
    _spec(KIOSK_RESERVE, KioskReserve, PRIORITY_HIGH),
    _spec(KIOSK_STARTED, KioskStarted, PRIORITY_HIGH),
    _spec(KIOSK_VIEW, KioskView, PRIORITY_HIGH),
    _spec(KIOSK_HANDOFF, KioskHandoff, PRIORITY_HIGH),
    _spec(KIOSK_SURVEY, KioskSurvey, PRIORITY_HIGH),
    _spec(KIOSK_STAFF, KioskStaff, PRIORITY_HIGH),
    _spec(KIOSK_SESSION, KioskSession, PRIORITY_HIGH),
    _spec(KIOSK_SERVE, KioskServe, PRIORITY_HIGH),
    _spec(NFC_TAP, NfcTap, PRIORITY_HIGH),
    _spec(QR_SCAN, QrScan, PRIORITY_HIGH),
    _spec(BLE_PRESENCE, BlePresence, PRIORITY_NORMAL),
    # beacon telemetry and aggregates: the first to go when the disk is short
    _spec(BLE_FOOTFALL, BleFootfall, PRIORITY_LOW),
    _spec(BLE_BEACON_HEALTH, BeaconHealth, PRIORITY_LOW),
    _spec(LINK_APPLIED, LinkApplied, PRIORITY_NORMAL),
    _spec(LINK_COMMAND, LinkCommand, PRIORITY_NORMAL),
    _spec(LINK_CONFIG, LinkConfig, PRIORITY_NORMAL),
    _spec(LINK_FAILED, LinkProblem, PRIORITY_NORMAL),
    _spec(LINK_REFUSED, LinkProblem, PRIORITY_NORMAL),
    _spec(LINK_WAITING, LinkWaiting, PRIORITY_NORMAL),
    # a staff alert is a shopper or the store waiting: it outranks the telemetry
    _spec(STAFF_ALERT, StaffAlert, PRIORITY_CRITICAL),
    _spec(STAFF_ALERT_ACKNOWLEDGED, StaffAlertAcknowledged, PRIORITY_HIGH),
    _spec(STAFF_ALERT_CLOSED, StaffAlertClosed, PRIORITY_HIGH),
    _spec(STAFF_ALERT_ESCALATED, StaffAlertEscalated, PRIORITY_HIGH),
    # money: a sale and a redemption outrank the touchpoints
    _spec(POS_SALE, PosSale, PRIORITY_CRITICAL),
    _spec(POS_REFUND, PosSale, PRIORITY_CRITICAL),
    _spec(OFFER_REDEEMED, OfferRedeemed, PRIORITY_CRITICAL),
    _spec(OFFER_REFUSED, OfferRefused, PRIORITY_HIGH),
    _spec(PRIVACY_ERASED, PrivacyErased, PRIORITY_NORMAL),
    _spec(PRIVACY_RETENTION, PrivacyRetention, PRIORITY_NORMAL),
])

# The priority of a type a bus client introduces under one of these families (a store's own
# kiosk event, a till's tap): as its registered siblings rank. First match wins.
FAMILY_PRIORITY: Final[tuple[tuple[str, int], ...]] = (
    (AGENT_PREFIX, PRIORITY_CRITICAL),
    (KIOSK_PREFIX, PRIORITY_HIGH),
    ("o2o.nfc.", PRIORITY_HIGH),
    ("o2o.qr.", PRIORITY_HIGH),
    ("o2o.ble.", PRIORITY_LOW),
)


def priority_of(event_type: str) -> int:
    """The outbox priority of an event type: registered, else its family's, else normal."""
    spec = REGISTRY.get(event_type)
    if spec is not None:
        return spec.priority
    for prefix, priority in FAMILY_PRIORITY:
        if event_type.startswith(prefix):
            return priority
    return PRIORITY_NORMAL
