"""The status document (the bus's `status` op, `o2o-edge status --json`, the metrics page,
telemetry, doctor, the kiosk's staff screen read it): the one place it is put together, from
what each component reports of itself. Its keys are a wire format: readers in the field
name them.

Also the agent's health as the systemd watchdog asks it (`health_problem`): the same facts,
read on the event loop."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from agent import __version__
from agent.config import Config
from agent.contracts.status import (
    BleStatus,
    BusStatus,
    CatalogStatus,
    CertificateStatus,
    ComponentHealth,
    LinkStatus,
    NfcStatus,
    OutboxStatus,
    PosStatus,
    QrStatus,
    Status,
    StoreDbStatus,
    UplinkStatus,
)
from agent.outbox import OutboxReader

SECTION_ORDER = (
    "agent", "outbox", "uplink", "certificate", "components", "ble", "nfc", "qr", "link",
    "catalog", "pos", "privacy", "bus", "store_db", "commit_hooks")


class _Drops(Protocol):
    @property
    def count(self) -> Mapping[str, int]: ...


class _Reserve(Protocol):
    @property
    def held(self) -> bool: ...

    @property
    def size(self) -> int: ...

    @property
    def releases(self) -> int: ...


class Writer(Protocol):
    """The outbox writer's figures (agent/outbox/writer.py)."""

    @property
    def seq(self) -> int: ...

    @property
    def committed_total(self) -> int: ...

    @property
    def transactions(self) -> int: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def counts(self) -> tuple[int, int] | None: ...

    @property
    def last_error(self) -> str: ...

    @property
    def quarantined(self) -> list[str]: ...

    @property
    def alive(self) -> bool: ...

    @property
    def drops(self) -> _Drops: ...

    @property
    def reserve(self) -> _Reserve: ...


class FileFigures(Protocol):
    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class OutboxFigures:
    """The outbox's part: the file's figures through a reader of its own, the writer's from
    the writer. The reader is opened once the writer has made the file (`open`)."""

    def __init__(self, path: Path, writer: Writer,
                 open_reader: Callable[[Path], FileFigures] = OutboxReader) -> None:
        self._path = path
        self._writer = writer
        self._open_reader = open_reader
        self._reader: FileFigures | None = None

    def open(self) -> None:
        self._reader = self._open_reader(self._path)

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    def status(self) -> OutboxStatus:
        outbox: OutboxStatus = {}
        if self._reader is not None:
            try:
                outbox = cast(OutboxStatus, self._reader.stats())
            except Exception as exc:  # a quarantined file: report, do not fail status
                outbox = {"error": str(exc)}
                self.close()
                with contextlib.suppress(Exception):
                    self.open()  # the writer's new file, for the next look
        w = self._writer
        counts = w.counts
        if counts is not None and "depth" in outbox:
            # the writer's own figures: the file's are saved only now and then (counts.py)
            outbox["bytes"], outbox["depth"] = counts
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
        return outbox


class Moved(Protocol):
    @property
    def moved_to(self) -> Path: ...

    @property
    def reason(self) -> str: ...


class Damageable(Protocol):
    @property
    def damage(self) -> str: ...


class StoreDbState:
    """The store database: moved aside at start, or damaged while running."""

    def __init__(self, moved: Moved | None, db: Damageable) -> None:
        self.moved = moved
        self._db = db

    @property
    def damage(self) -> str:
        return self._db.damage

    def status(self) -> StoreDbStatus:
        if self._db.damage:
            problem = (f"damaged while running ({self._db.damage}): restart the agent "
                       "(systemctl restart o2o-edge); it moves the file aside")
        else:
            problem = f"moved aside at start: {self.moved.reason}" if self.moved else ""
        return {"quarantined": [str(self.moved.moved_to)] if self.moved else [],
                "last_error": problem}


class UplinkPart(Protocol):
    """The uplink's part (agent/uplink/drain.py), its keys those of UplinkStatus."""

    def status(self) -> Mapping[str, object]: ...


class LinkPart(Protocol):
    """The store link's receiver (agent/storelink/receiver.py)."""

    def status(self) -> LinkStatus: ...


class Components(Protocol):
    def snapshot(self) -> dict[str, ComponentHealth]: ...


class Consent(Protocol):
    @property
    def withdrawn(self) -> set[str]: ...

    @property
    def withheld(self) -> int: ...


class Bus(Protocol):
    def status_part(self) -> BusStatus: ...


class Touchpoints(Protocol):
    """Each running touchpoint's section by name (ble, nfc, qr; agent/services/touchpoints.py),
    its keys those of BleStatus, NfcStatus, QrStatus."""

    def status(self) -> Mapping[str, Mapping[str, object]]: ...


class KpiCounts(Protocol):
    @property
    def ignored(self) -> int: ...


class StatusBuilder:
    def __init__(self, bootid: str, config: Callable[[], Config], trial: bool,
                 outbox: OutboxFigures, uplink: UplinkPart | None, components: Components,
                 touchpoints: Touchpoints, link: LinkPart | None, consent: Consent, bus: Bus,
                 store_db: StoreDbState, commit_failures: Mapping[str, int],
                 kpis: KpiCounts, clock: Callable[[], float] = time.monotonic,
                 catalog: Callable[[], CatalogStatus] | None = None,
                 pos: Callable[[], PosStatus] | None = None,
                 certificate: Callable[[], CertificateStatus] | None = None) -> None:
        """`config`: the configuration in force (a live one changes it); `link`: the store
        link's receiver, when documents are taken from upstream; `catalog`: the catalog's
        section (from memory: this runs on the loop); `pos`: the tills' counts."""
        self.bootid = bootid
        self._config = config
        self._trial = trial
        self._outbox = outbox
        self._uplink = uplink
        self._components = components
        self._touchpoints = touchpoints
        self._link = link
        self._consent = consent
        self._bus = bus
        self._store_db = store_db
        self._commit_failures = commit_failures
        self._kpis = kpis
        self._clock = clock
        self._catalog = catalog
        self._pos = pos
        self._certificate = certificate  # the renewal's figures, from memory
        self._started = clock()  # uptime must not follow clock steps

    def build(self) -> Status:
        cfg = self._config()
        doc: Status = {
            "agent": {
                "version": __version__,
                "pid": os.getpid(),
                "bootid": self.bootid,
                "store": cfg.device.store,
                "device": cfg.device.id,
                "uptime_s": round(self._clock() - self._started, 1),
                "config": cfg.source,
                "config_version": cfg.remote_version,
                "config_trial": self._trial,
                "rss_mib": rss_mib(),
            },
            "outbox": self._outbox.status(),
            # each component's own part, as it reports it (the contract names the keys)
            "uplink": cast(UplinkStatus, self._uplink.status()) if self._uplink
            else {"state": "disabled"},
            "components": self._components.snapshot(),
            "privacy": {"withdrawn": len(self._consent.withdrawn),
                        "withheld_events": self._consent.withheld},
            "bus": self._bus.status_part(),
            "store_db": self._store_db.status(),
            "commit_hooks": {"failures": dict(self._commit_failures),
                             "kpi_ignored_values": self._kpis.ignored},
        }
        touchpoints = self._touchpoints.status()
        if "ble" in touchpoints:
            doc["ble"] = cast(BleStatus, touchpoints["ble"])
        if "nfc" in touchpoints:
            doc["nfc"] = cast(NfcStatus, touchpoints["nfc"])
        if "qr" in touchpoints:
            doc["qr"] = cast(QrStatus, touchpoints["qr"])
        if self._link is not None:
            doc["link"] = self._link.status()
        if self._catalog is not None:
            doc["catalog"] = self._catalog()
        if self._pos is not None:
            doc["pos"] = self._pos()
        if self._certificate is not None:
            doc["certificate"] = self._certificate()
        # the sections in the order `status --json` has always shown them
        parts = cast(dict[str, Any], doc)
        return cast(Status, {key: parts[key] for key in SECTION_ORDER if key in parts})


def rss_mib() -> float:
    """This process's resident memory (VmRSS, MiB); 0.0 where /proc does not say."""
    with contextlib.suppress(OSError, StopIteration, ValueError), \
            open("/proc/self/status") as fh:
        return round(next(int(line.split()[1]) for line in fh
                          if line.startswith("VmRSS:")) / 1024, 1)
    return 0.0


def health_problem(writer: Writer, store_db: StoreDbState) -> str | None:
    """Why the agent should be restarted, or None. Runs on the event loop, so a loop that is
    blocked never gets here — which is the other half of the watchdog."""
    if not writer.alive:
        return "the outbox writer thread has stopped"
    if store_db.damage:  # a restart moves it aside
        return f"the store database is damaged ({store_db.damage})"
    return None
