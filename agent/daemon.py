"""The agent process, built and wired: the outbox writer, the local bus, the uplink and the
store link, the touchpoints and the periodic jobs under one supervisor. What each of them does
is in agent/services/ (and the packages they use); this module only makes them, hands each its
collaborators, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from agent import __version__
from agent.attribution import Visits
from agent.bus.roles import StaffGate
from agent.bus.server import BusServer
from agent.catalog import CatalogStore, catalog_applier, lookup_op
from agent.checkin import CheckinService, StoreDb
from agent.config import Config
from agent.contracts.bus import Op
from agent.contracts.events import AGENT_STARTED
from agent.contracts.shared_settings import store_zone
from agent.contracts.status import Status
from agent.enroll.renewal import Renewal, renewal_on, renewal_topics
from agent.envelope import new_id, source_uri
from agent.kpi import Kpis
from agent.metrics import AgentCollector
from agent.notify import Notifier
from agent.outbox import Committed, OutboxWriter
from agent.personal_offers import PersonalOffers
from agent.pos import PosLedger, PosService
from agent.pos.service import bus_op as pos_bus_op
from agent.privacy import Privacy
from agent.repeat_visits import RepeatVisits
from agent.services import alerts_wiring, periodic
from agent.services.capture import Capture
from agent.services.commands import UpstreamCommands
from agent.services.downstream_port import DownstreamPort, Handler
from agent.services.erasure import Erasure
from agent.services.fanout import CommitFanout
from agent.services.kiosk_ops import KioskOps
from agent.services.loop import LoopControl
from agent.services.observability import Observability
from agent.services.remote_config import RemoteConfig
from agent.services.status import OutboxFigures, StatusBuilder, StoreDbState, health_problem
from agent.services.touchpoints import Touchpoints
from agent.statepaths import StatePaths
from agent.storedb import StoreDatabase, check_at_start
from agent.storelink.apply import store_data_appliers
from agent.storelink.blobs import BlobStore
from agent.storelink.cache import LinkCache
from agent.storelink.receiver import DocReceiver
from agent.storelink.service import StoreLink, link_topics
from agent.supervisor import Supervisor
from agent.uplink.drain import Downstream, Uplink

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 3.0  # batches in flight get this long to be acknowledged on the way out

CaptureFn = Callable[[str, Any], "Future[list[Committed]]"]
SourceFactory = Callable[[CaptureFn], Awaitable[None]]


class Agent:
    def __init__(self, cfg: Config, sources: dict[str, SourceFactory] | None = None,
                 trial: bool = False) -> None:
        """`sources`: further event sources by name (tests); `trial`: cfg carries a remote
        config not yet proven (RemoteConfig.keep_or_roll_back)."""
        self.bootid = new_id()
        self.sources = sources or {}
        self.supervisor = Supervisor()
        self.loop = LoopControl()
        self.ready, self.notifier = asyncio.Event(), Notifier()
        self.fanout = CommitFanout()  # the writer needs it before its consumers exist
        o, d, paths = cfg.outbox, cfg.device, StatePaths.of(cfg)
        self.writer = OutboxWriter(
            o.path, max_bytes=o.max_bytes, ttl_s=o.ttl_days * 86400.0,
            source=source_uri(d.store, d.id), bootid=self.bootid,
            group_commit_ms=o.group_commit_ms, on_commit=self.fanout,
            reserve_bytes=o.reserve_mb * 1024 * 1024)
        self.writer.reserve.install()  # any of the agent's databases may give it up
        # the store database: a damaged one is moved aside before anything opens it; one
        # owner of the file, each repository borrowing it for its own tables
        self.store_db_moved = check_at_start(paths.store_db)
        self.store = store = StoreDatabase.open(paths.store_db)
        self.store_db, self.link_cache = StoreDb(store), LinkCache(store)
        # days and hours in the store's time; repeat visits by the consent key's hash
        self.repeat_visits = RepeatVisits(store, lambda s: self.privacy.key_of(s))
        self.kpis = Kpis(store, store_zone(d.timezone), repeat=self.repeat_visits)
        self.visits = Visits()
        al = self.alerts = alerts_wiring.staff_alerts(cfg, store, lambda t, d: self.capture(t, d))
        self.pos_ledger = PosLedger(store)
        # a snapshot's parts come as the store link's content files do
        self.catalog = CatalogStore(store, blobs=BlobStore(paths.content_dir))
        # personal offers under the consent scheme's keyed hash, none for a withdrawn app
        self.offers = PersonalOffers(lambda s: self.privacy.key_of(s),
                                     lambda: self.privacy.withdrawn)
        self.privacy = Privacy(store, groups=(self.store_db, self.link_cache, self.kpis, al.store,
                                              self.pos_ledger, self.offers,
                                              self.repeat_visits))
        self.offers.restore(self.link_cache)
        self.pos = PosService(self.pos_ledger, d.store, lambda: self.cfg.qr.offer_public_keys,
                              self.privacy.key_of, lambda t, data: self.capture(t, data))
        self.pos_endpoint: Any = None  # agent/pos/http.py PosEndpoint, when [pos] enabled
        self.capture = Capture(self.writer, self.privacy.allows,
                               lambda t, data: self.visits.observe(t, self.pos.on_scan(t, data)))
        self.touchpoints = Touchpoints(cfg, self.capture, self.supervisor)

        port = DownstreamPort()  # the uplink feeds the store link, which answers through it
        link_on = bool(cfg.mqtt.url and cfg.link.public_keys)
        renew_on = bool(cfg.mqtt.url and renewal_on(cfg))
        topics = ((link_topics(d.store, d.id) if link_on else ())
                  + ((renewal_topics(cfg)[1],) if renew_on else ()))
        self.uplink = Uplink(cfg, self.writer, self.bootid,
                             Downstream(topics, port.handle)
                             if topics else None) if cfg.mqtt.url else None
        # the device's certificate, renewed before it expires over the same connection
        self.renewal = Renewal(cfg, self.uplink) if renew_on and self.uplink else None
        self.remote_config = RemoteConfig(cfg, paths, self.capture, self.loop,
                                          self.touchpoints, self.uplink, trial)
        erasure = Erasure(self.writer, self.privacy, self.visits.forget,
                          self.touchpoints.forget_presence, self.capture)
        self.commands = UpstreamCommands(self.bootid, self.status, self.uplink, self.loop,
                                         self.capture, erasure)
        self.link_receiver: DocReceiver | None = None
        downstream: Handler | None = None
        if link_on and self.uplink is not None:
            link = StoreLink(
                d.store, d.id, cfg.link.public_keys, self.link_cache,
                {**store_data_appliers(self.store_db, al.watch.orders_ready),
                 "consent": self.privacy.apply_consent, "config": self.remote_config.apply,
                 "catalog": catalog_applier(self.catalog), "offers": self.offers.apply},
                paths.content_dir, self.capture, self.uplink.publish_reply,
                self.commands.handlers(), self.uplink.want_topics, self.loop.later)
            downstream = link.handle
            self.link_receiver = link.receiver
        if self.renewal is not None:
            downstream = self.renewal.route(downstream)
        if downstream is not None:
            port.plug(downstream)

        kiosk = KioskOps(CheckinService(self.store_db, d.store, self.capture,
                                        cfg.kiosk.early_checkin_min,
                                        arrived=al.watch.arrived), self.kpis,
                         today=self.kpis.today)
        ops = kiosk.ops() | al.ops() | {Op.POS: pos_bus_op(self.pos),
                                        Op.CATALOG_LOOKUP: lookup_op(self.catalog, self.online),
                                        Op.PERSONAL_OFFER: self.offers.op}
        self.bus = BusServer(cfg.bus.socket, self.writer, self.status, ops,
                             enrich=self.visits.observe, allow=self.privacy.allows,
                             gate=StaffGate(cfg.staff.bus_tokens))
        self.outbox = OutboxFigures(o.path, self.writer)
        self.store_db_state = StoreDbState(self.store_db_moved, store)
        self._status = StatusBuilder(
            self.bootid, lambda: self.remote_config.cfg, trial, self.outbox, self.uplink,
            self.supervisor, self.touchpoints, self.link_receiver, self.privacy, self.bus,
            self.store_db_state, self.fanout.failures, self.kpis,
            catalog=lambda: self.catalog.status(self._catalog_waiting()),
            pos=lambda: self.pos.status(self.pos_endpoint),
            certificate=self.renewal.status if self.renewal is not None else None)
        self.metrics = AgentCollector(self.status, cfg.mqtt.cert_file)
        self.observability = Observability(cfg.metrics, self.metrics, self.status, self.kpis,
                                           self.uplink, self.supervisor, today=self.kpis.today)
        # each commit group: the uplink and the kiosk's live stream first
        if self.uplink is not None:
            self.fanout.connect("uplink", self.uplink.notify_committed)
        self.fanout.connect("bus", self.bus.publish_committed)
        self.fanout.connect("metrics", lambda cs: self.metrics.count_committed(
            [c.type for c in cs]))
        self.fanout.connect("kpis", lambda cs: self.kpis.add_bodies(
            [(c.type, c.created, c.body) for c in cs]))
        self.fanout.connect("alerts", al.watch.consume)

    @property
    def cfg(self) -> Config:
        """The configuration in force (a remote one applied live included)."""
        return self.remote_config.cfg

    @property
    def trial(self) -> bool:
        return self.remote_config.trial

    def status(self) -> Status:
        return self._status.build()

    def _catalog_waiting(self) -> int:
        """The parts the catalog's snapshot waits for (the store link holds the document)."""
        rx = self.link_receiver
        waiting = rx.deferred.get(("catalog", "all")) if rx is not None else None
        return len(waiting[2]) if waiting else 0

    def online(self) -> bool:
        """Connected to the broker now: the catalog's prices are as fresh as upstream's."""
        link = self.uplink.link if self.uplink is not None else None
        return link is not None and link.state == "connected"

    def health_problem(self) -> str | None:
        return health_problem(self.writer, self.store_db_state)

    async def run(self, stop: asyncio.Event) -> None:
        cfg, spawn = self.cfg, self.supervisor.spawn
        self.loop.bind(asyncio.get_running_loop(), stop)
        await asyncio.to_thread(self.writer.start)
        self.outbox.open()
        self.pos.resend_pending()
        if cfg.pos.enabled:  # up before the bus: a client that hears the agent finds it
            from agent.pos.http import PosEndpoint  # aiohttp loads only where tills post

            self.pos_endpoint = PosEndpoint(cfg.pos, self.pos)
            await self.pos_endpoint.start()
        await self.bus.start()
        if self.uplink is not None:
            spawn("uplink", self.uplink.run)
        if self.renewal is not None:
            spawn("cert-renewal", self.renewal.run)
        self.touchpoints.start()
        for name, factory in self.sources.items():
            spawn(name, lambda f=factory: f(self.capture))  # type: ignore[misc]
        self.capture(AGENT_STARTED, {
            "version": __version__, "pid": os.getpid(), "config": cfg.source})
        if self.store_db_moved is not None:
            self.writer.submit([self.store_db_moved.notice()])
        log.info("agent %s up: store=%s device=%s bus=%s outbox=%s", __version__,
                 cfg.device.store, cfg.device.id, cfg.bus.socket, cfg.outbox.path)
        self.observability.start()
        self.ready.set()
        self.notifier.ready(f"running: store {cfg.device.store}, device {cfg.device.id}")
        spawn("watchdog", lambda: self.notifier.watchdog(self.health_problem))
        spawn("housekeeping", lambda: periodic.trim_heap(periodic.malloc_trim()))
        spawn("kpis", lambda: periodic.flush_kpis(self.kpis.flush))
        spawn("alerts", lambda: self.alerts.watch.run(self.status))
        spawn("retention", lambda: periodic.sweep_retention(
            self.privacy.sweep, lambda: self.cfg.privacy.retention_days, self.capture))
        if self.trial:
            spawn("config-trial", self.remote_config.keep_or_roll_back)
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        self.notifier.stopping()
        await self.supervisor.stop(list(self.sources))
        if self.pos_endpoint is not None:
            await self.pos_endpoint.stop()
        await self.bus.stop()
        # give batches already in flight a moment to be acknowledged, then say goodbye
        if self.uplink is not None:
            deadline = time.monotonic() + SHUTDOWN_DRAIN_S
            while self.uplink.status()["inflight_batches"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self.uplink.stop()
        await self.supervisor.stop()
        await asyncio.to_thread(self.writer.stop)
        await asyncio.to_thread(self.kpis.close)
        await asyncio.to_thread(self.pos.flush_sent)  # the tills' receipts the outbox has
        await self.observability.stop()
        for closing in (self.privacy, self.link_cache, self.store_db, self.outbox, self.store):
            closing.close()  # the store database's owner last
        log.info("agent stopped")
