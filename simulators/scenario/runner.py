"""Plays a scenario on a `Stage`: the store floor's radio through the fake BlueZ in the
scenario's time (`speed` store seconds per wall second), and one timeline at the counter —
taps on the reader, codes shown to the camera, check-ins typed on the kiosk (Pilot), sales
the till posts (simulators/pos.py), and the faults starting and ending — in scenario
order, so what a fault takes away is exactly what the expectation says. At the end the
backlog is drained, the agent and the collector are stopped, and what reached the collector
is checked against the expectation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.collector.store import EventStore
from agent.contracts.status import Status
from drivers.qr import offer as offer_codes
from drivers.qr.pickup import make_code
from kiosk.settings import load_settings
from simulators.bluez_player import FakeBlueZThread
from simulators.brokers import PrivateBroker
from simulators.fake_bluez import FakeBlueZ
from simulators.pos import PosSimulator, Receipt
from simulators.scenario import shopper
from simulators.scenario.expected import (
    Expected,
    Received,
    check,
    checkin_via,
    expected_as_applied,
)
from simulators.scenario.faults import Faults
from simulators.scenario.model import Appointment, Call, Consent, Sale, Scenario, code_words
from simulators.scenario.props import build_floor, code_frame, tag_for
from simulators.scenario.staff import StaffDesk
from simulators.scenario.stage import Stage

# A shopper holds a tag on the reader or a code in front of the camera until the agent has
# taken it (a touchpoint coming back from a fault may need a moment), at most this long
HOLD_MAX_S = 10.0
LATE_DOC_S = 10 * 60  # a consent document applied this much store time after it was sent


def _counter(st: Status, part: str, counter: str) -> int:
    """A touchpoint's counter by section name ("nfc", "qr"), read as the mapping it is."""
    sections: Mapping[str, Any] = st
    return int(sections[part][counter])


@dataclass
class Outcome:
    expected: Expected
    received: Received
    problems: list[str]
    final_seq: dict[str, int]
    addresses: set[str]
    log: list[str] = field(default_factory=list)
    late_s: float = 0.0  # how far the counter fell behind the scenario's clock at worst
    wall_s: float = 0.0


class Runner:
    def __init__(self, sc: Scenario, workdir: Path, broker: str | PrivateBroker = "mosquitto",
                 progress: Callable[[str], None] | None = None,
                 speed: float | None = None) -> None:
        if speed:
            sc.speed = speed
        self.sc = sc
        self.stage = Stage(sc, workdir, broker)
        self.progress = progress or (lambda line: None)
        self.log: list[str] = []
        # the demo's timeline takes the lines instead of `progress`, to stamp them itself
        self.narrator: Callable[[float, str], None] | None = None
        self.floor = build_floor(sc)
        self.addresses: set[str] = set()
        self.t0 = 0.0  # monotonic time of the store's opening
        self.late = 0.0
        self.radio = False
        self.stage_had_link = False
        self.interrupted = threading.Event()
        self.faults = Faults(self.stage)
        self.staff = StaffDesk(self.stage.bus_socket, self.say, self.stage.staff_token)
        self.answers: list[asyncio.Task[None]] = []
        self.till_problems: list[str] = []  # what the till was told that it should not be
        # each consent document as it reached the store: store time once the agent applied it
        # (later than sent while the link is down; None: never within the hold)
        self.consents_applied: list[Consent] = []
        self.consents_unsure: set[int] = set()  # app users whose document was not applied

    # --- time and stopping -----------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        # not an exception thrown into whatever runs: every loop below looks at this flag,
        # so the stage is always stopped from a known place
        self.interrupted.set()

    def _check_interrupt(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    async def _sleep_until(self, wall: float) -> None:
        while not self.interrupted.is_set():
            delay = wall - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, 0.2))

    def wall(self, t: float) -> float:
        return self.t0 + t / self.sc.speed

    def store_time(self) -> float:
        return (time.monotonic() - self.t0) * self.sc.speed

    def clock_text(self, t: float) -> str:
        """Store time `t` (seconds after opening) as the store's clock, "HH:MM"."""
        h = self.sc.opens_h * 3600 + t
        return f"{int(h // 3600):02d}:{int(h % 3600 // 60):02d}"

    def say(self, t: float, what: str) -> None:
        line = f"{self.clock_text(t)} {what}"
        self.log.append(line)
        if self.narrator is not None:
            self.narrator(t, what)
        else:
            self.progress(line)

    # --- the whole run -------------------------------------------------------------------

    def run(self) -> Outcome:
        """Play the scenario; SIGINT or SIGTERM stop it cleanly (everything the stage
        started is stopped) and raise KeyboardInterrupt."""
        started = time.monotonic()
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.stage.start()
            self._check_interrupt()
            self.radio = self.stage.bluez is not None
            self.stage_had_link = bool(self.stage.broker_url)
            for note in self.stage.notes:
                self.say(0, note)
            received, final_seq = asyncio.run(self._play())
            self._check_interrupt()
        finally:
            self.stage.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        # the agent can only keep to a consent document it has: judged by when each one was
        # applied (with no broker none ever reaches the store)
        ex = expected_as_applied(self.sc, self.consents_applied, self.consents_unsure)
        if not self.radio:  # nobody to hear the beacons and phones on this machine
            ex.app_users, ex.low_battery, ex.sale_visits = set(), set(), {}
        problems = check(self.sc, ex, received, self.addresses, final_seq) + self.till_problems
        return Outcome(ex, received, problems, final_seq, self.addresses, self.log,
                       round(self.late, 2), round(time.monotonic() - started, 1))

    async def _play(self) -> tuple[Received, dict[str, int]]:
        from kiosk.app import KioskApp  # Textual loads when the kiosk plays, not on import

        app = KioskApp(load_settings(str(self.stage.cfg_path)))
        async with app.run_test(size=(120, 44)) as pilot:
            await shopper.until(pilot, lambda: app.agent_up, 30, "the agent link")
            self.t0 = time.monotonic() + 0.5
            bluez = self.stage.bluez
            radio = None if bluez is None else asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._radio(bluez), bluez.loop))
            upstream = asyncio.create_task(self._upstream())
            await self._counter(pilot, app)
            await upstream
            if radio is not None:
                if not self.interrupted.is_set():
                    self.say(self.sc.length_s, "the store closes; the last radio signals "
                                               "are heard out")
                await radio
            if self.interrupted.is_set():
                return Received([], []), {}
            final_seq = await asyncio.to_thread(self._drain)
            await shopper.go_home(pilot, app)
        await asyncio.to_thread(self.stage.stop_agent)
        await asyncio.to_thread(self.stage.stop_collector)
        return self._received(), final_seq

    # --- the radio -----------------------------------------------------------------------

    async def _radio(self, bluez: FakeBlueZThread) -> None:
        """Runs on the fake BlueZ's own loop; a bluetoothd restart swaps `bluez.fake`."""
        restarts = [f.at for f in self.sc.faults_of("bluetoothd-restart")]
        for adv in self.floor.adverts(0.0, self.sc.length_s):
            t = adv.t or 0.0
            while restarts and restarts[0] <= t:
                restarts.pop(0)
                await self._restart_bluez(bluez)
            await self._sleep_until(self.wall(t))
            if self.interrupted.is_set():
                return
            if bluez.fake.advertise(adv.address, adv.rssi, adv.manufacturer_data,
                                    adv.service_data):
                self.addresses.add(adv.address)

    async def _restart_bluez(self, bluez: FakeBlueZThread) -> None:
        assert self.stage.dbus is not None
        await bluez.fake.stop()
        bluez.fake = FakeBlueZ(self.stage.dbus.address)
        await bluez.fake.start()

    # --- the counter: taps, codes, check-ins and faults in scenario order ----------------

    def _timeline(self) -> list[tuple[float, int, str, Any]]:
        sc = self.sc
        items: list[tuple[float, int, str, Any]] = []
        for f in sc.faults:
            items.append((f.at, 0, "fault-start", f))
            if f.minutes:
                items.append((f.end, 0, "fault-end", f))
        items += [(tp.at, 1, "tap", tp) for tp in sc.taps]
        items += [(s.at, 1, "scan", s) for s in sc.scans]
        items += [(c.at, 1, "checkin", c) for c in sc.checkins]
        items += [(c.at, 1, "call", c) for c in sc.calls]
        items += [(a.at, 1, "appointment", a) for a in sc.appointments]
        items += [(s.at, 1, "sale", s) for s in sc.sales]
        return sorted(items, key=lambda x: (x[0], x[1]))

    async def _counter(self, pilot: Any, app: Any) -> None:
        for t, _, kind, item in self._timeline():
            self.late = max(self.late, time.monotonic() - self.wall(t))
            await self._sleep_until(self.wall(t))
            if self.interrupted.is_set():
                return
            if kind in ("fault-start", "fault-end"):
                starting = kind == "fault-start"
                said = await asyncio.to_thread(self.faults.apply, item, starting)
                self.say(item.at if starting else item.end, said)
            elif kind == "tap":
                await self._tap(pilot, app, t, item.tag)
            elif kind == "scan":
                text = item.text or (self.offer_code(item.offer) if item.offer else make_code(
                    self.stage.pickup_key, item.pickup, self._expiry(), self.sc.store))
                await self._show(t, text, f"a shopper shows {code_words(item.expect)} "
                                          "to the camera")
            elif kind == "call":
                await self._call(pilot, app, t, item)
            elif kind == "appointment":
                await self._arrival(pilot, app, t, item)
            elif kind == "sale":
                await self._sale(t, item)
            else:
                await self._checkin(pilot, app, t, item)
        # the staff answer in their own time, beside the counter; a call nobody answers
        # is judged once the agent has had the time to escalate it
        await asyncio.gather(*self.answers)
        await self.staff.until_escalated(self.store_time)

    async def _call(self, pilot: Any, app: Any, t: float, call: Call) -> None:
        await shopper.go_home(pilot, app)
        app.follow_text = ""  # the words for this call, not an earlier one's
        said = await shopper.call_staff(pilot, app)
        self.say(t, f"a shopper calls staff at the kiosk: {said}")
        self.answers.append(asyncio.create_task(self.staff.answer(
            call, t, self.wall, lambda: str(app.follow_text))))

    async def _arrival(self, pilot: Any, app: Any, t: float, appt: Appointment) -> None:
        """A shopper checks in for their appointment on the kiosk's keypad; the staff desk
        answers the alert it raises (or nobody does), beside the counter, as for a call."""
        app.follow_text = ""
        await shopper.type_pickup_code(pilot, app, appt.code, button="#go-appointment")
        said = await shopper.finish_checkin(pilot, app, 0)
        what = f"{appt.service} appointment" if appt.service else "appointment"
        self.say(t, f"{appt.first_name or 'A shopper'} arrives for their {what} and checks in "
                    f"at the kiosk; the kiosk says “{said}”")
        self.answers.append(asyncio.create_task(self.staff.answer(
            appt, t, self.wall, lambda: str(app.follow_text))))

    def offer_code(self, offer_id: str) -> str:
        """The signed code of an [[offer]]: the same text every time it is shown or used."""
        o = self.sc.offers[offer_id]
        return offer_codes.make_code(self.stage.offer_key, o.id, o.campaign, o.text,
                                     self._expiry() // 3600 * 3600, o.stores)

    async def _sale(self, t: float, sale: Sale) -> None:
        """The till posts the receipt (twice if it resends) over HTTP with its token, as
        simulators/pos.py replays a receipts file; each answer is checked as the till reads
        it: 200, the resend told it is a replay of the same answer, and each offer's state."""
        till = PosSimulator(f"http://127.0.0.1:{self.stage.pos_port}", self.stage.pos_token)
        request = sale.request({o: self.offer_code(o) for o in sale.offers})
        receipt = Receipt(t, "sale", request)
        posted = [await asyncio.to_thread(till.post, receipt)
                  for _ in range(2 if sale.resend else 1)]
        first = posted[0]
        if first.status != 200:
            self.till_problems.append(f"sale {sale.receipt}: the till was answered "
                                      f"{first.status} {first.body}")
        if sale.resend and not (posted[1].replayed and posted[1].body == first.body):
            self.till_problems.append(f"sale {sale.receipt}: the resend was not answered as a "
                                      f"replay of the first answer: {posted[1].body}")
        states = [f"{o} {s.get('state')}" + (f" ({s['reason']})" if s.get("reason") else "")
                  for o, s in zip(sale.offers, first.body.get("offers", []), strict=False)]
        money = f"{sale.total / 100:.2f} {sale.currency}"
        self.say(t, f"the till rings up {sale.receipt} ({money})"
                 + (f" with offer {', '.join(states)}" if states else "")
                 + (", then sends it again" if sale.resend else "")
                 + f": {first.status} in {first.seconds * 1000:.0f} ms")

    def _expiry(self) -> int:
        # valid through the day, whatever the clock faults do to the agent's clock
        return int(time.time() + self.sc.length_s + 86400)

    async def _upstream(self) -> None:
        """Consent from upstream on the store's clock — not behind the counter, whose
        shoppers may run late — each waited for until the agent has applied it."""
        if not self.stage.broker_url:  # upstream reaches the store only through a broker
            return
        for n, c in enumerate(self.sc.consents, start=1):
            await self._sleep_until(self.wall(c.at))
            if self.interrupted.is_set():
                return
            await asyncio.to_thread(self.stage.publish_doc, "consent", {
                "mode": "increment", "rows": [{"subject": f"app:{self.sc.app_uuid}:1:{c.app}",
                                               "state": c.state}]})
            applied = await self._until_applied("consent/all", n)
            reached = max(c.at, self.store_time())
            if applied:
                self.consents_applied.append(dataclasses.replace(c, at=reached))
            else:
                self.consents_unsure.add(c.app)
            late = (f" (it reached the store at {self.clock_text(reached)}: the link was down)"
                    if applied and reached - c.at > LATE_DOC_S else "")
            self.say(c.at, f"upstream: app user {c.app} consent {c.state}"
                     + (late if applied else f" (not applied within {HOLD_MAX_S:.0f} s)"))

    async def _until_applied(self, key: str, version: int) -> bool:
        return await self._within_hold(
            lambda st: st.get("link", {}).get("applied", {}).get(key, 0) >= version, 0.05)

    async def _within_hold(self, cond: Callable[[Status], bool], every: float) -> bool:
        """Whether the agent's status meets `cond` within HOLD_MAX_S, asked every `every`
        seconds (False if interrupted)."""
        deadline = time.monotonic() + HOLD_MAX_S
        while time.monotonic() < deadline and not self.interrupted.is_set():
            if cond(await asyncio.to_thread(self.stage.status)):
                return True
            await asyncio.sleep(every)
        return False

    async def _tap(self, pilot: Any, app: Any, t: float, name: str) -> None:
        tag = self.sc.tags[name]
        what = f"a shopper taps {tag.words} on the reader"
        if self.sc.during("nfc-unplugged", t):
            self.say(t, f"{what}: the reader is unplugged, nothing happens")
            return
        emu = self.stage.nfc
        assert emu is not None
        card = tag.role == "loyalty"
        if card:  # the kiosk answers a card from its home screen
            await shopper.go_home(pilot, app)
        before = await self._count("nfc", "taps")
        emu.present(tag_for(tag))
        taken = await self._taken("nfc", "taps", before)
        emu.remove()
        await asyncio.sleep(0.5)  # longer than the reader's debounce
        if not taken:
            self.say(t, f"{what} (not read: the shopper gave up)")
        elif card:
            said = await shopper.read_result(pilot, app)
            self.say(t, f"{what}; the kiosk says “{said}”")
        else:
            self.say(t, what)

    async def _show(self, t: float, text: str, what: str) -> None:
        cam = self.stage.camera
        assert cam is not None
        if self.sc.during("camera-gone", t):
            self.say(t, f"{what}: the camera is gone, nobody reads it")
            return
        before = await self._count("qr", "scans")
        cam.show(code_frame(text), HOLD_MAX_S)
        taken = await self._taken("qr", "scans", before)
        cam.hide()
        await asyncio.sleep(0.3)
        self.say(t, what + ("" if taken else " (not read: the shopper gave up)"))

    async def _count(self, part: str, counter: str) -> int:
        return _counter(await asyncio.to_thread(self.stage.status), part, counter)

    async def _taken(self, part: str, counter: str, before: int) -> bool:
        """Wait, as a person would, until the agent has taken what is shown."""
        return await self._within_hold(lambda st: _counter(st, part, counter) > before, 0.1)

    async def _checkin(self, pilot: Any, app: Any, t: float, ck: Any) -> None:
        order = self.sc.orders[ck.order]
        via = checkin_via(self.sc, t, ck.via)
        if via == "qr":
            await shopper.go_home(pilot, app)
            await self._show(t, make_code(self.stage.pickup_key, order.id, self._expiry(),
                                          self.sc.store),
                             f"{order.first_name} shows the pickup code on the phone")
        else:
            await shopper.type_pickup_code(pilot, app, order.code)
        said = await shopper.finish_checkin(pilot, app, ck.score)
        how = "with the code on the phone" if via == "qr" else "by typing the pickup code"
        survey = f"; then the survey: {ck.score} of 5 stars" if ck.score else ""
        self.say(t, f"{order.first_name} checks in {how}; the kiosk says “{said}”{survey}")

    # --- the end -------------------------------------------------------------------------

    def _collected(self, bootid: str) -> int:
        try:
            with contextlib.closing(sqlite3.connect(self.stage.collector_db, timeout=5)) as db:
                return int(db.execute("SELECT count(*) FROM events WHERE bootid = ?",
                                      (bootid,)).fetchone()[0])
        except sqlite3.Error:
            return 0

    def _drain(self, timeout: float = 120) -> dict[str, int]:
        """Wait until everything the agent committed is in the collector (with no broker:
        until it is all committed to the outbox)."""
        deadline = time.monotonic() + timeout
        st = self.stage.status()
        while time.monotonic() < deadline and not self.interrupted.is_set():
            st = self.stage.status()
            seq, boot = st["outbox"]["seq"], st["agent"]["bootid"]
            if self.stage.link is None and st["outbox"]["queued"] == 0:
                self.say(self.store_time(), f"no broker: {st['outbox']['depth']} events "
                                            "buffered in the outbox")
                return {boot: seq}
            if st["outbox"]["depth"] == 0 and self._collected(boot) >= seq:
                self.say(self.store_time(), f"all {seq} events are upstream")
                return {boot: seq}
            time.sleep(0.3)
        self.say(self.store_time(), f"not drained after {timeout:.0f}s: {st['outbox']}")
        return {st["agent"]["bootid"]: st["outbox"]["seq"]}

    def _received(self) -> Received:
        if self.stage.link is None:  # nothing went upstream: judge what the outbox kept
            with contextlib.closing(sqlite3.connect(self.stage.paths.outbox)) as db:
                bodies = [body for (body,) in db.execute("SELECT body FROM events ORDER BY n")]
            buffered = EventStore(f"sqlite:///{self.stage.collector_db}")
            buffered.add_batch(("[" + ",".join(bodies) + "]").encode())
            buffered.close()
        store = EventStore(f"sqlite:///{self.stage.collector_db}")
        try:
            report = store.report()
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(self.stage.collector_db)) as db:
            events = [json.loads(body) for (body,) in db.execute("SELECT body FROM events")]
        return Received(events, report)
