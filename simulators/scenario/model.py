"""A store day as a scenario file (TOML): the store, its beacons with their battery curves,
shopper-app users walking between them, anonymous phones, shelf tags and loyalty cards,
orders, and what happens at which time — taps, codes shown to the camera, check-ins at the
kiosk with a survey, shoppers calling staff at the kiosk (and the staff member who answers,
after how long, or nobody), shoppers arriving for appointments (checked in at the kiosk, and
who greets them), consent withdrawn or granted from upstream, sales at the till (a receipt
posted to the agent's tills endpoint by simulators/pos.py, with the campaign offer codes it
redeems; [[offer]] names the codes a scan shows or a sale redeems), and faults. Times are
"HH:MM" on the store's day.

`load(path)` reads and checks a file; every problem is named by its place
("tap[3].tag: no tag 'shelf-x' in [tags]").
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.contracts.alerts import BY_MAX, valid_by
from simulators.errors import ScenarioError as ScenarioError  # kept importable from here
from simulators.scenario.till import Offer as Offer
from simulators.scenario.till import Sale as Sale
from simulators.scenario.till import parse_offers, parse_sales

FAULTS = ("broker-down", "network-cut", "bluetoothd-restart", "nfc-unplugged", "camera-gone",
          "disk-full", "clock-jump")
TAG_TYPES = ("ntag213", "felica", "type4a")
_UID_LEN = {"ntag213": 7, "felica": 8, "type4a": 7}
APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"  # the shopper app's iBeacon UUID
NAMESPACE = "edd1ebeac04e5defa017"  # the store's Eddystone-UID namespace
# the stage's [staff] escalate_after_s, in real seconds (the agent's clock is not sped up):
# the shortest the agent takes, so a call nobody answers escalates within a short run
ESCALATE_AFTER_S = 10

# what each fault is, in the words of the store: as it begins, as it ends
FAULT_WORDS: dict[str, tuple[str, str]] = {
    "broker-down": ("the broker upstream stops", "the broker upstream is back"),
    "network-cut": ("the network to the broker is cut", "the network to the broker is back"),
    "bluetoothd-restart": ("Bluetooth on the Pi restarts", ""),
    "nfc-unplugged": ("the NFC reader is unplugged", "the NFC reader is plugged in again"),
    "camera-gone": ("the camera disappears", "the camera is back"),
    "disk-full": ("the Pi's disk fills up", "disk space is freed"),
    "clock-jump": ("the Pi's clock steps", ""),
}
# what a code shown to the camera holds, by the class the agent must give it
CODE_WORDS: dict[str, str] = {
    "product": "a product link", "campaign": "a campaign link", "pickup": "a pickup code",
    "loyalty": "a loyalty code", "text": "a code with plain text",
    "rejected": "a code with a link the store does not allow", "offer": "an offer code",
}


def code_words(expect: str) -> str:
    return CODE_WORDS.get(expect, f"a code ({expect})")


@dataclass(frozen=True)
class Beacon:
    name: str
    namespace: str  # Eddystone-UID namespace (10 bytes hex) and instance (6 bytes hex)
    instance: str
    x: float
    y: float
    battery_mv: tuple[int, int]  # at opening, at closing (a straight line between)


@dataclass(frozen=True)
class Shopper:
    at: float  # seconds after opening
    walk: tuple[str, ...]  # beacon names visited in turn
    minutes: float
    app: int = 0  # the opted-in app's iBeacon minor; 0 = an anonymous phone


@dataclass(frozen=True)
class Tag:
    name: str
    type: str
    uid: str
    uri: str = ""
    title: str = ""
    role: str = "shelf"  # shelf (registered) | loyalty (registered card) | unknown
    # a loyalty card's holder (first name), registered in the store's database: the kiosk
    # greets them; "" = a card the store's reader knows but nobody registered ("not found")
    holder: str = ""
    points: int = 0

    @property
    def words(self) -> str:
        """The tag as a shopper or a store manager would name it."""
        if self.role == "loyalty":
            return f"{self.holder}'s loyalty card" if self.holder else \
                "a loyalty card nobody registered"
        if self.role == "unknown":
            return "a stranger's card"
        return f"the {self.title or self.name.removeprefix('shelf-').replace('-', ' ')} shelf tag"


@dataclass(frozen=True)
class Order:
    id: str
    code: str
    first_name: str
    eta_min: int = 3


@dataclass(frozen=True)
class Tap:
    at: float
    tag: str


@dataclass(frozen=True)
class Scan:
    at: float
    text: str = ""  # what the code holds; or:
    pickup: str = ""  # an order id: a signed pickup code for it is shown; or:
    expect: str = ""  # the class the agent must give it (product, pickup, rejected, ...)
    offer: str = ""  # an [[offer]]'s id: its signed offer code is shown


@dataclass(frozen=True)
class Checkin:
    at: float
    order: str
    via: str  # "code" (typed at the kiosk) or "qr" (the order's code shown to the camera)
    score: int = 0  # the survey answer after it (0: skipped)


@dataclass(frozen=True)
class Call:
    at: float
    staff: str = ""  # who acknowledges the alert the call raises; "": nobody (it escalates)
    answer_after_s: float = 60.0  # store seconds from the call to the acknowledgement

    def escalates(self, speed: float) -> bool:
        """Whether the agent escalates it: nobody answers, or not within escalate_after_s
        of real time (the store's seconds pass `speed` times faster)."""
        return not self.staff or self.answer_after_s / speed >= ESCALATE_AFTER_S


@dataclass(frozen=True)
class Appointment(Call):
    """A shopper arriving for an appointment: at `at` they check in at the kiosk with the
    appointment's code; the agent raises an "appointment" alert, which `staff` acknowledges
    after `answer_after_s` (or nobody does), as for a call. Booked BOOKED_AFTER_S after the
    arrival, so the check-in is never too early."""

    id: str = ""
    code: str = ""  # what the shopper types at the kiosk's keypad (4-10, no I or O)
    first_name: str = ""
    service: str = ""  # "fitting", "repair", ...: what the staff view says it is for


BOOKED_AFTER_S = 600.0  # an appointment's time, in store seconds after its shopper arrives
_APPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # as the store database takes it
# what the kiosk's keypad can type (kiosk/widgets/keypad.py: no I or O, they read as 1 and 0)
_APPT_CODE = re.compile(r"[0-9A-HJ-NP-Z]{4,10}")


@dataclass(frozen=True)
class Consent:
    at: float
    app: int  # the opted-in app's identifier (its iBeacon minor)
    state: str  # "granted" or "withdrawn", sent as a signed consent document


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    minutes: float = 0.0
    shift_min: float = 0.0  # clock-jump: how far the wall clock steps (negative: back)

    @property
    def end(self) -> float:
        return self.at + self.minutes * 60

    def covers(self, t: float) -> bool:
        return self.at <= t < self.end


@dataclass
class Scenario:
    store: str
    device: str
    opens_h: float
    hours: float
    speed: float
    app_uuid: str
    beacons: list[Beacon] = field(default_factory=list)
    shoppers: list[Shopper] = field(default_factory=list)
    tags: dict[str, Tag] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    taps: list[Tap] = field(default_factory=list)
    scans: list[Scan] = field(default_factory=list)
    checkins: list[Checkin] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    offers: dict[str, Offer] = field(default_factory=dict)
    sales: list[Sale] = field(default_factory=list)

    @property
    def length_s(self) -> float:
        return self.hours * 3600

    def faults_of(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def during(self, kind: str, t: float) -> bool:
        return any(f.covers(t) for f in self.faults_of(kind))

    def in_time_order(self) -> None:
        """Sort every timed lane by its time (the runner plays them in order)."""
        for lane in (self.taps, self.scans, self.checkins, self.calls, self.appointments,
                     self.shoppers, self.consents, self.faults, self.sales):
            lane.sort(key=lambda x: x.at)

    def consent_at(self, app: int, t: float) -> str:
        """The app user's consent at time t: the last document sent before, else granted."""
        state = "granted"
        for c in self.consents:
            if c.app == app and c.at <= t:
                state = c.state
        return state


def _clock(value: Any, where: str) -> float:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ScenarioError(f"{where}: {value!r} is not a time of day like \"09:30\"")
    h, m = value.split(":")
    if int(h) > 23 or int(m) > 59:
        raise ScenarioError(f"{where}: {value!r} is not a time of day")
    return int(h) * 3600 + int(m) * 60


class _Reader:
    def __init__(self, raw: dict[str, Any], opens: float, length: float) -> None:
        self.raw = raw
        self.opens = opens
        self.length = length

    def table(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ScenarioError(f"[{name}] must be a table")
        return value

    def items(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ScenarioError(f"{name}: must be an array of tables ([[{name}]])")
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]

    def time(self, item: dict[str, Any], where: str) -> float:
        t = _clock(item.get("at"), f"{where}.at") - self.opens
        if not 0 <= t <= self.length:
            raise ScenarioError(f"{where}.at: {item.get('at')} is outside opening hours")
        return t


def _get(item: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = item.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}.{key}: missing")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ScenarioError(f"{where}.{key}: {value!r} should be a {kind.__name__}")
    return value


def parse(raw: dict[str, Any]) -> Scenario:
    store = raw.get("store")
    if not isinstance(store, dict):
        raise ScenarioError("[store] is missing: it names the store, device, hours and speed")
    opens = _clock(store.get("opens", "09:00"), "store.opens")
    closes = _clock(store.get("closes", "19:00"), "store.closes")
    if closes <= opens:
        raise ScenarioError("store.closes: the store must close after it opens")
    speed = _get(store, "speed", float, "store", 300.0)
    if not 1 <= speed <= 3600:
        raise ScenarioError(f"store.speed: {speed} should be between 1 and 3600")
    r = _Reader(raw, opens, closes - opens)
    sc = Scenario(store=_get(store, "id", str, "store", "store-1"),
                  device=_get(store, "device", str, "store", "pi-1"), opens_h=opens / 3600,
                  hours=(closes - opens) / 3600, speed=speed,
                  app_uuid=_get(store, "app_uuid", str, "store", APP_UUID))
    for where, b in r.items("beacon"):
        mv = _get(b, "battery_mv", list, where, [3000, 3000])
        if len(mv) != 2 or not all(isinstance(v, int) for v in mv):
            raise ScenarioError(f"{where}.battery_mv: give [at opening, at closing] in mV")
        inst = f"{len(sc.beacons) + 1:012x}"
        sc.beacons.append(Beacon(_get(b, "name", str, where), NAMESPACE,
                                 _get(b, "instance", str, where, inst),
                                 _get(b, "x", float, where), _get(b, "y", float, where),
                                 (mv[0], mv[1])))
    names = {b.name for b in sc.beacons}
    for where, s in r.items("shopper"):
        walk = tuple(_get(s, "walk", list, where))
        unknown = [w for w in walk if w not in names]
        if not walk or unknown:
            raise ScenarioError(f"{where}.walk: {unknown or 'empty'} — name beacons of [[beacon]]")
        sc.shoppers.append(Shopper(r.time(s, where), walk, _get(s, "minutes", float, where),
                                   _get(s, "app", int, where, 0)))
    for name, t in r.table("tags").items():
        where = f"tags.{name}"
        if not isinstance(t, dict):
            raise ScenarioError(f"{where}: must be a table")
        kind = _get(t, "type", str, where, "ntag213")
        uid = _get(t, "uid", str, where).lower()
        if kind not in TAG_TYPES:
            raise ScenarioError(f"{where}.type: {kind!r} is not one of {', '.join(TAG_TYPES)}")
        if not re.fullmatch(r"[0-9a-f]+", uid) or len(uid) != 2 * _UID_LEN[kind]:
            raise ScenarioError(f"{where}.uid: a {kind} has a {_UID_LEN[kind]}-byte UID in hex")
        role = _get(t, "role", str, where, "shelf")
        if role not in ("shelf", "loyalty", "unknown"):
            raise ScenarioError(f"{where}.role: shelf, loyalty or unknown")
        holder = _get(t, "holder", str, where, "").strip()
        if holder and role != "loyalty":
            raise ScenarioError(f"{where}.holder: only a loyalty card has a holder")
        sc.tags[name] = Tag(name, kind, uid, _get(t, "uri", str, where, ""),
                            _get(t, "title", str, where, ""), role, holder,
                            _get(t, "points", int, where, 0))
    for where, o in r.items("order"):
        order = Order(_get(o, "id", str, where), _get(o, "code", str, where),
                      _get(o, "first_name", str, where), _get(o, "eta_min", int, where, 3))
        sc.orders[order.id] = order
    for where, tp in r.items("tap"):
        tag = _get(tp, "tag", str, where)
        if tag not in sc.tags:
            raise ScenarioError(f"{where}.tag: no tag {tag!r} in [tags]")
        sc.taps.append(Tap(r.time(tp, where), tag))
    sc.offers = parse_offers(r.items("offer"), _get)
    for where, s in r.items("scan"):
        scan = Scan(r.time(s, where), _get(s, "text", str, where, ""),
                    _get(s, "pickup", str, where, ""), _get(s, "expect", str, where),
                    _get(s, "offer", str, where, ""))
        if sum(map(bool, (scan.text, scan.pickup, scan.offer))) != 1:
            raise ScenarioError(f"{where}: give either text or pickup, or an offer")
        if scan.pickup and scan.pickup not in sc.orders:
            raise ScenarioError(f"{where}.pickup: no order {scan.pickup!r} in [[order]]")
        if scan.offer and scan.offer not in sc.offers:
            raise ScenarioError(f"{where}.offer: no offer {scan.offer!r} in [[offer]]")
        sc.scans.append(scan)
    for where, c in r.items("checkin"):
        ck = Checkin(r.time(c, where), _get(c, "order", str, where),
                     _get(c, "via", str, where, "code"), _get(c, "score", int, where, 0))
        if ck.order not in sc.orders:
            raise ScenarioError(f"{where}.order: no order {ck.order!r} in [[order]]")
        if ck.via not in ("code", "qr") or not 0 <= ck.score <= 5:
            raise ScenarioError(f"{where}: via is code or qr, score 0 (none) to 5")
        sc.checkins.append(ck)
    for where, c in r.items("call"):
        call = Call(r.time(c, where), _get(c, "staff", str, where, "").strip(),
                    _get(c, "answer_after_s", float, where, 60.0))
        if not 0 <= call.answer_after_s <= 3600:
            raise ScenarioError(f"{where}.answer_after_s: 0 to 3600 store seconds")
        if call.staff and not valid_by(call.staff):
            raise ScenarioError(f"{where}.staff: a staff name of at most {BY_MAX} printable "
                                "characters (or leave it out: nobody answers)")
        sc.calls.append(call)
    for where, a in r.items("appointment"):
        appt = Appointment(r.time(a, where), _get(a, "staff", str, where, "").strip(),
                           _get(a, "answer_after_s", float, where, 60.0),
                           _get(a, "id", str, where), _get(a, "code", str, where).upper(),
                           _get(a, "first_name", str, where, "").strip(),
                           _get(a, "service", str, where, "").strip())
        if not _APPT_ID.fullmatch(appt.id):
            raise ScenarioError(f"{where}.id: 1-64 letters, digits and _.:- (like \"P-7\")")
        if not _APPT_CODE.fullmatch(appt.code):
            raise ScenarioError(f"{where}.code: 4 to 10 letters and digits the kiosk's keypad "
                                "has (no I or O)")
        if any(x.id == appt.id or x.code == appt.code for x in sc.appointments):
            raise ScenarioError(f"{where}: id {appt.id!r} or code {appt.code!r} is taken by "
                                "another [[appointment]]")
        if not 0 <= appt.answer_after_s <= 3600:
            raise ScenarioError(f"{where}.answer_after_s: 0 to 3600 store seconds")
        if appt.staff and not valid_by(appt.staff):
            raise ScenarioError(f"{where}.staff: a staff name of at most {BY_MAX} printable "
                                "characters (or leave it out: nobody answers)")
        sc.appointments.append(appt)
    for where, c in r.items("consent"):
        consent = Consent(r.time(c, where), _get(c, "app", int, where),
                          _get(c, "state", str, where))
        if consent.state not in ("granted", "withdrawn"):
            raise ScenarioError(f"{where}.state: granted or withdrawn")
        sc.consents.append(consent)
    for where, f in r.items("fault"):
        kind = _get(f, "kind", str, where)
        if kind not in FAULTS:
            raise ScenarioError(f"{where}.kind: {kind!r} is not one of {', '.join(FAULTS)}")
        fault = Fault(r.time(f, where), kind, _get(f, "minutes", float, where, 0.0),
                      _get(f, "shift_min", float, where, 0.0))
        if kind == "clock-jump" and not fault.shift_min:
            raise ScenarioError(f"{where}.shift_min: how far the clock steps, in minutes")
        if kind not in ("clock-jump", "bluetoothd-restart") and fault.minutes <= 0:
            raise ScenarioError(f"{where}.minutes: how long the fault lasts")
        sc.faults.append(fault)
    sc.sales = parse_sales(r.items("sale"), r.time, _get, sc.offers,
                           {sh.app for sh in sc.shoppers if sh.app})
    sc.in_time_order()
    return sc


def load(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path} is not valid TOML: {exc}") from exc
    return parse(raw)
