"""The agent process: outbox writer, local bus, uplink and event sources under one supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import Config
from agent.envelope import make_pending, new_id, source_uri
from agent.notify import Notifier
from agent.outbox import Committed, OutboxReader, OutboxWriter
from agent.services.uplink_port import UplinkPort
from agent.storedb_file import check_at_start
from agent.supervisor import Supervisor
from agent.uplink.drain import Downstream, Uplink

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 3.0
HOUSEKEEPING_S = 10.0
KPI_FLUSH_S = 5.0  # hourly roll-ups reach the database at most this late

Capture = Callable[[str, Any], "Future[list[Committed]]"]
SourceFactory = Callable[[Capture], Awaitable[None]]


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on other C libraries."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:
        return None


async def _housekeeping() -> None:
    # Hand freed heap back to the OS: a long drain allocates and frees large batch buffers
    # from several threads, and without this the heap keeps its high-water mark.
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(HOUSEKEEPING_S)
        trim(0)


# remote config sections applied while running (the touchpoints that read them restart);
# the others (mqtt, kiosk, metrics) restart the agent, a new [mqtt] on trial
LIVE_SECTIONS = frozenset({"ble", "nfc", "qr", "privacy"})
SOURCE_SECTIONS = {"ble": {"ble"}, "nfc": {"nfc", "qr"}, "qr": {"qr"}}


def changed_sections(old: Config, new: Config) -> set[str]:
    return {f.name for f in dataclasses.fields(Config)
            if f.name not in ("source", "path", "remote_version")
            and getattr(old, f.name) != getattr(new, f.name)}


class Agent:
    def __init__(self, cfg: Config, sources: dict[str, SourceFactory] | None = None,
                 trial: bool = False) -> None:
        """`trial`: cfg carries a remote config not yet proven; see _config_trial."""
        from agent.bus.server import BusServer  # bus imports the writer; keep startup light

        self.cfg = cfg
        self.trial = trial
        self.bootid = new_id()
        self.started = time.monotonic()  # uptime must not follow clock steps
        self.sources = sources or {}
        self.supervisor = Supervisor()
        self.writer = OutboxWriter(
            cfg.outbox.path,
            max_bytes=cfg.outbox.max_bytes,
            ttl_s=cfg.outbox.ttl_days * 86400.0,
            source=source_uri(cfg.device.store, cfg.device.id),
            bootid=self.bootid,
            group_commit_ms=cfg.outbox.group_commit_ms,
            on_commit=self._on_commit,
            reserve_bytes=cfg.outbox.reserve_mb * 1024 * 1024,
        )
        self.writer.reserve.install()  # any of the agent's databases may give it up
        self.uplink: Uplink | None = None
        self.store_db: Any = None
        self.checkin: Any = None
        self.link_receiver: Any = None
        self.link_commands: Any = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        from agent.attribution import Visits
        from agent.privacy import Privacy

        # a damaged store database is moved aside before anything opens it (a fresh one is made)
        self.store_db_moved = check_at_start(cfg.kiosk.store_db)
        self.visits = Visits()
        self.privacy = Privacy(cfg.kiosk.store_db)
        self.bus = BusServer(cfg.bus.socket, self.writer, self.status, self._kiosk_ops(),
                             enrich=self.visits.observe, allow=self.privacy.allows)
        self.ble = self._make_ble() if cfg.ble.enabled else None
        self.nfc = self._make_nfc() if cfg.nfc.enabled else None
        self.qr = self._make_qr() if cfg.qr.enabled else None
        self._make_uplink()
        self._reader: OutboxReader | None = None
        self.ready = asyncio.Event()
        self.notifier = Notifier()
        self.commit_hook_failures: dict[str, int] = {}  # by consumer (_on_commit)
        from agent.kpi import Kpis
        from agent.metrics import AgentCollector

        self.metrics = AgentCollector(self.status)
        self.kpis = Kpis(cfg.kiosk.store_db)
        self._metrics_server: Any = None

    def _kiosk_ops(self) -> dict[str, Any]:
        """Check-in answers for the kiosk, from the store's orders and appointments."""
        from agent.checkin import CheckinService, StoreDb

        def service() -> CheckinService:
            if self.checkin is None:  # opened on first use: a headless agent never needs it
                self.store_db = self.store_db or StoreDb(self.cfg.kiosk.store_db)
                self.checkin = CheckinService(self.store_db, self.cfg.device.store,
                                              self.capture, self.cfg.kiosk.early_checkin_min)
            svc: CheckinService = self.checkin
            return svc

        def check_in(msg: dict[str, Any]) -> dict[str, Any]:
            req = msg.get("request")
            return {"result": service().checkin(req if isinstance(req, dict) else {})}

        def kpis(msg: dict[str, Any]) -> dict[str, Any]:
            from agent.kpi import now_day, summary

            self.kpis.flush()
            asked = msg.get("day")
            day = asked if isinstance(asked, int) else now_day()
            hourly = self.kpis.day(day)
            return {"day": day, "hourly": hourly, "summary": summary(hourly)}

        def queue(msg: dict[str, Any]) -> dict[str, Any]:
            return service().queue(msg)  # rows bounded by "limit", with "total"

        def handover(msg: dict[str, Any]) -> dict[str, Any]:
            return {"result": service().handover(str(msg.get("order")))}

        return {"checkin": check_in, "queue": queue, "handover": handover, "kpis": kpis}

    def _make_uplink(self) -> None:
        """The uplink, when there is a broker, and the store link taking documents from
        upstream through it, when keys to check them are pinned."""
        from agent.checkin import StoreDb
        from agent.storelink.apply import store_data_appliers
        from agent.storelink.cache import LinkCache
        from agent.storelink.service import StoreLink

        if not self.cfg.mqtt.url:
            return
        downstream = None
        port = UplinkPort()
        if self.cfg.link.public_keys:
            self.store_db = self.store_db or StoreDb(self.cfg.kiosk.store_db)
            d = self.cfg.device
            link = StoreLink(
                d.store, d.id, self.cfg.link.public_keys, LinkCache(self.cfg.kiosk.store_db),
                {**store_data_appliers(self.store_db), "consent": self.privacy.apply_consent,
                 "config": self._apply_remote_config},
                self.cfg.kiosk.store_db.parent / "content", self.capture, port.publish_reply,
                self._command_handlers(), port.want_topics, self._later)
            self.link_receiver, self.link_commands = link.receiver, link.commands
            downstream = Downstream(tuple(link.topics()), link.handle)
        self.uplink = Uplink(self.cfg, self.writer, self.bootid, downstream)
        port.plug(self.uplink)

    def _later(self, delay: float, fn: Any) -> None:
        """Run fn on the event loop after delay seconds, from any thread (the store link's
        rate-limited report summaries)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.call_later, delay, fn)

    def _apply_remote_config(self, doc: Any) -> Awaitable[None] | None:
        """Validate a config document like the local file and stage it; the agent restarts
        into it on trial (_config_trial keeps it or rolls it back). Runs in a worker job;
        a live change is returned, to be made on the loop (the store link awaits it there)."""
        import json as _json

        from agent.config import load_config, remote_config_paths
        from agent.errors import ConfigError
        from agent.storelink.docs import DocRefused

        body = doc.body
        if not isinstance(body, dict) or not isinstance(body.get("sections"), dict):
            raise DocRefused("malformed", 'a config document needs {"sections": {...}}')
        try:
            new = load_config(self.cfg.path or None, overlay=(doc.version, body["sections"]))
        except ConfigError as exc:
            raise DocRefused("malformed", f"the configuration would not load: {exc}") from None
        applied, pending = remote_config_paths()
        changed = changed_sections(self.cfg, new)
        live = (changed <= LIVE_SECTIONS and not pending.exists() and self._loop is not None
                and self._stop is not None)
        target = applied if live else pending
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(_json.dumps({"version": doc.version, "sections": body["sections"]}))
        tmp.replace(target)
        if not live:  # the uplink or the agent's own wiring changes: restart on trial
            self.capture("o2o.link.config", {"version": doc.version, "state": "restarting",
                                             "sections": sorted(changed)})
            self._restart_soon()
            return None
        return self._apply_live(new, changed)

    async def _apply_live(self, new: Config, changed: set[str]) -> None:
        """Swap sections that are safe to change while running: the touchpoints they feed
        are restarted with the new settings; the uplink, the outbox and the bus go on."""
        self.cfg = dataclasses.replace(
            self.cfg, source=new.source, remote_version=new.remote_version,
            **{name: getattr(new, name) for name in changed})
        restarted = []
        for name, needs in SOURCE_SECTIONS.items():
            if not changed & needs:
                continue
            await self.supervisor.stop([name])
            self.supervisor.forget(name)
            source = getattr(self, f"_make_{name}")() if getattr(self.cfg, name).enabled else None
            setattr(self, name, source)
            if source is not None:
                self.supervisor.spawn(name, source.run)
            restarted.append(name)
        if self.uplink is not None:
            self.uplink.reconfigure(self.cfg)
        log.info("remote config v%s applied live: %s changed%s", new.remote_version,
                 ", ".join(sorted(changed)) or "nothing",
                 f"; restarted {', '.join(restarted)}" if restarted else "")
        self.capture("o2o.link.config", {"version": new.remote_version, "state": "applied",
                                         "live": True, "sections": sorted(changed),
                                         "restarted": restarted})

    def _restart_soon(self) -> None:
        # a clean stop; systemd (Restart=always) starts the agent again
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.call_later, 0.5, self._stop.set)

    async def _config_trial(self) -> None:
        """A remote config on trial: kept once the uplink connects, rolled back (and the
        agent restarted into the last good one) if it does not within config_trial_s."""
        from agent.config import remote_config_paths

        applied, pending = remote_config_paths()
        deadline = time.monotonic() + self.cfg.link.config_trial_s
        while time.monotonic() < deadline:
            if self.uplink is not None and self.uplink.status()["state"] == "connected":
                if pending.exists():
                    pending.replace(applied)
                self.capture("o2o.link.config", {"version": self.cfg.remote_version,
                                                 "state": "applied"})
                log.info("remote config v%s applied", self.cfg.remote_version)
                return
            await asyncio.sleep(0.2)
        why = self.uplink.status()["last_error"] if self.uplink else "no uplink configured"
        if pending.exists():
            pending.replace(pending.with_suffix(".rolled-back"))
        log.warning("remote config v%s rolled back: no uplink within %.0f s (%s)",
                    self.cfg.remote_version, self.cfg.link.config_trial_s, why)
        self.capture("o2o.link.config", {"version": self.cfg.remote_version,
                                         "state": "rolled-back", "reason": why or "no connection"})
        self._restart_soon()

    def _command_handlers(self) -> dict[str, Any]:
        """What upstream may ask; each runs on the event loop (the store link runs commands
        there, where the touchpoints' state lives) and answers at once, or when its
        awaitable is done (the slow ones work off the loop)."""
        from agent.storelink.commands import parse_level

        def flush(args: dict[str, Any]) -> dict[str, Any]:
            if self.uplink is not None:
                self.uplink.flush()
            return {"outbox_depth": self.status()["outbox"].get("depth")}

        def set_log_level(args: dict[str, Any]) -> dict[str, Any]:
            logging.getLogger().setLevel(parse_level(args))
            return {"level": str(args["level"]).lower()}

        def restart(args: dict[str, Any]) -> dict[str, Any]:
            self._restart_soon()
            return {"restarting": True}

        def reload_content(args: dict[str, Any]) -> dict[str, Any]:
            self.capture("o2o.link.command", {"name": "reload-content"})  # the kiosk listens
            return {"asked": "kiosk"}

        async def erase_subject(args: dict[str, Any]) -> dict[str, Any]:
            """Off the loop (the databases are searched and rewritten), the answer when done;
            the open visit and presence track, which live on the loop, forgotten there."""
            from agent.checkin import StoreDb
            from agent.privacy import subject_forms
            from agent.storelink.cache import LinkCache
            from agent.storelink.commands import CommandError

            subject = args.get("subject")
            if not isinstance(subject, str) or not 1 <= len(subject) <= 128 \
                    or not subject.isprintable():
                raise CommandError("subject must be the identifier to erase (1-128 characters)")
            # the subject as it may be written: events are JSON with its characters as they
            # are (not \u-escaped), in either Unicode normal form
            forms = subject_forms(subject)
            outbox = await asyncio.wrap_future(self.writer.erase(
                sorted({json.dumps(f, ensure_ascii=False) for f in forms})))
            self.store_db = self.store_db or StoreDb(self.cfg.kiosk.store_db)
            receiver = self.link_receiver

            def in_store_db() -> dict[str, int]:
                stored = {**self.store_db.erase_subject(subject),
                          "consent_records": self.privacy.erase(subject)}
                cache = receiver.cache if receiver is not None \
                    else LinkCache(self.cfg.kiosk.store_db)  # cached while the link was on
                stored["cached_documents"] += cache.erase_subject(forms)
                if receiver is None:
                    cache.close()
                return stored

            removed = {"outbox_events": outbox, **await asyncio.to_thread(in_store_db),
                       "open_visits": self.visits.forget(subject),
                       "presence_tracks": self.ble.presence.forget(subject)
                       if self.ble is not None else 0}
            # the record of the erasure names the subject only by a hash
            self.capture("o2o.privacy.erased", {
                "subject_sha256": hashlib.sha256(subject.encode()).hexdigest()[:16],
                "removed": removed})
            return {"removed": removed}

        return {
            "erase-subject": erase_subject,
            "ping": lambda args: {"pong": True, "bootid": self.bootid},
            "status": lambda args: self.status(),
            "flush": flush,
            "set-log-level": set_log_level,
            "restart": restart,
            "reload-content": reload_content,
        }

    def _make_ble(self) -> Any:
        from agent.presence.ble_source import BleSource
        from drivers.ble.scanner import BleakBeaconScanner, ReplayScanner

        b = self.cfg.ble
        scanner: Any
        if b.replay:
            scanner = ReplayScanner(Path(b.replay), speed=b.replay_speed)
        else:
            scanner = BleakBeaconScanner(adapter=b.adapter or None, mode=b.mode,  # type: ignore[arg-type]
                                         watchdog_s=b.watchdog_s, expect_adverts=bool(b.beacons))
        return BleSource(b, scanner, self.capture, capture_time=bool(b.replay))

    def _make_nfc(self) -> Any:
        from agent.nfc_source import NfcSource
        from drivers.nfc.reader import NfcpyReader

        n = self.cfg.nfc
        reader = NfcpyReader(n.reader, targets=tuple(n.targets), debounce_s=n.debounce_s)
        return NfcSource(self.cfg, reader, self.capture)

    def _make_qr(self) -> Any:
        from agent.qr_source import QrSource

        return QrSource(self.cfg, self.capture)

    def _on_commit(self, committed: list[Committed]) -> None:
        """Each consumer of a commit group on its own (writer thread): one that fails on an
        odd event is counted and logged, and the others still get the whole group — the
        uplink and the kiosk's live stream first."""
        uplink = self.uplink
        for name, consume in (
            ("uplink", uplink.notify_committed if uplink is not None else None),
            ("bus", self.bus.publish_committed),
            ("metrics", lambda cs: self.metrics.count_committed([c.type for c in cs])),
            ("kpis", lambda cs: self.kpis.add_bodies([(c.type, c.created, c.body)
                                                      for c in cs])),
        ):
            if consume is None:
                continue
            try:
                consume(committed)
            except Exception:
                n = self.commit_hook_failures[name] = self.commit_hook_failures.get(name, 0) + 1
                if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: a bug is seen, the log not flooded
                    log.exception("commit hook %s failed (%d times so far)", name, n)

    def capture(self, event_type: str, data: Any) -> Future[list[Committed]]:
        """Entry point for in-process sources; never waits on the uplink. Events are linked
        to the campaign and the shopper-app visit they belong to on the way."""
        if not self.privacy.allows(event_type, data):
            done: Future[list[Committed]] = Future()
            done.set_result([])  # consent withdrawn: not reported at all
            return done
        data = self.visits.observe(event_type, data)
        return self.writer.submit([make_pending(event_type, data, time.time())])

    async def run(self, stop: asyncio.Event) -> None:
        self._stop, self._loop = stop, asyncio.get_running_loop()
        await asyncio.to_thread(self.writer.start)
        self._reader = OutboxReader(self.cfg.outbox.path)
        await self.bus.start()
        if self.uplink is not None:
            self.supervisor.spawn("uplink", self.uplink.run)
        if self.ble is not None:
            self.supervisor.spawn("ble", self.ble.run)
        if self.nfc is not None:
            self.supervisor.spawn("nfc", self.nfc.run)
        if self.qr is not None:
            self.supervisor.spawn("qr", self.qr.run)
        for name, factory in self.sources.items():
            self.supervisor.spawn(name, lambda f=factory: f(self.capture))  # type: ignore[misc]
        self.capture("o2o.agent.started", {
            "version": __version__, "pid": os.getpid(), "config": self.cfg.source,
        })
        if self.store_db_moved is not None:
            self.writer.submit([self.store_db_moved.notice()])
        log.info("agent %s up: store=%s device=%s bus=%s outbox=%s", __version__,
                 self.cfg.device.store, self.cfg.device.id, self.cfg.bus.socket,
                 self.cfg.outbox.path)
        self._start_observability()
        self.ready.set()
        self.notifier.ready(f"running: store {self.cfg.device.store}, device "
                            f"{self.cfg.device.id}")
        self.supervisor.spawn("watchdog", lambda: self.notifier.watchdog(self.health_problem))
        self.supervisor.spawn("housekeeping", _housekeeping)
        self.supervisor.spawn("kpis", self._flush_kpis)
        self.supervisor.spawn("retention", self._retention)
        if self.trial:
            self.supervisor.spawn("config-trial", self._config_trial)
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    def _start_observability(self) -> None:
        from agent.metrics import publish_telemetry, serve

        m = self.cfg.metrics
        if m.listen:
            try:
                self._metrics_server = serve(self.metrics, m.listen)
            except OSError as exc:  # a taken port must not keep the agent from capturing
                log.warning("metrics endpoint %s not started: %s", m.listen, exc)
        if self.uplink is not None and m.telemetry_interval_s:
            from agent.kpi import now_day, summary

            uplink = self.uplink

            def with_kpis() -> dict[str, Any]:
                return {**self.status(), "kpis_today": summary(self.kpis.day(now_day()))}
            self.supervisor.spawn("telemetry", lambda: publish_telemetry(
                with_kpis, uplink.publish_telemetry, m.telemetry_interval_s))

    async def _retention(self) -> None:
        """The daily sweep of every local table (the first one shortly after start)."""
        await asyncio.sleep(60)
        while True:
            removed = await asyncio.to_thread(self.privacy.sweep,
                                              self.cfg.privacy.retention_days)
            if any(removed.values()):
                self.capture("o2o.privacy.retention", {"removed": removed})
            await asyncio.sleep(86400)

    async def _flush_kpis(self) -> None:
        while True:
            await asyncio.sleep(KPI_FLUSH_S)
            await asyncio.to_thread(self.kpis.flush)

    def _store_db_problem(self) -> str:
        if self.store_db is not None and self.store_db.damage:
            return (f"damaged while running ({self.store_db.damage}): restart the agent "
                    "(systemctl restart o2o-edge); it moves the file aside")
        moved = self.store_db_moved
        return f"moved aside at start: {moved.reason}" if moved else ""

    def health_problem(self) -> str | None:
        """Why the agent should be restarted, or None. Runs on the event loop, so a loop that
        is blocked never gets here — which is the other half of the watchdog."""
        if not self.writer.alive:
            return "the outbox writer thread has stopped"
        if self.store_db is not None and self.store_db.damage:  # a restart moves it aside
            return f"the store database is damaged ({self.store_db.damage})"
        return None

    async def shutdown(self) -> None:
        self.notifier.stopping()
        await self.supervisor.stop([n for n in self.sources])
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
        self.privacy.close()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
        if self.store_db is not None:
            self.store_db.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
        log.info("agent stopped")

    def status(self) -> dict[str, Any]:
        outbox: dict[str, Any] = {}
        if self._reader is not None:
            try:
                outbox = self._reader.stats()
            except Exception as exc:  # a quarantined file: report, do not fail status
                outbox = {"error": str(exc)}
                with contextlib.suppress(Exception):
                    self._reader.close()
                    self._reader = OutboxReader(self.cfg.outbox.path)
        w = self.writer
        outbox.update({
            "seq": w.seq,
            "committed_this_boot": w.committed_total,
            "transactions": w.transactions,
            "queued": w.queue_depth,
            "last_error": w.last_error,
            "quarantined": w.quarantined,
            "writer": "running" if w.alive else "stopped",
            "dropped_this_boot": dict(w.drops.count),
            "reserve": {"held": w.reserve.held, "bytes": w.reserve.size,
                        "releases": w.reserve.releases},
        })
        return {
            "agent": {
                "version": __version__,
                "pid": os.getpid(),
                "bootid": self.bootid,
                "store": self.cfg.device.store,
                "device": self.cfg.device.id,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "config": self.cfg.source,
                "config_version": self.cfg.remote_version,
                "config_trial": self.trial,
            },
            "outbox": outbox,
            "uplink": self.uplink.status() if self.uplink else {"state": "disabled"},
            "components": self.supervisor.snapshot(),
            **({"ble": self.ble.status()} if self.ble is not None else {}),
            **({"nfc": self.nfc.status()} if self.nfc is not None else {}),
            **({"qr": self.qr.status()} if self.qr is not None else {}),
            **({"link": self.link_receiver.status()} if self.link_receiver else {}),
            "privacy": {"withdrawn": len(self.privacy.withdrawn),
                        "withheld_events": self.privacy.withheld},
            "bus": self.bus.status_part(),
            "store_db": {"quarantined": [str(self.store_db_moved.moved_to)]
                         if self.store_db_moved else [],
                         "last_error": self._store_db_problem()},
            "commit_hooks": {"failures": dict(self.commit_hook_failures),
                             "kpi_ignored_values": self.kpis.ignored},
        }
