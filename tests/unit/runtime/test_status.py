"""The status document, put together in one place from what each component reports; and the
health the systemd watchdog asks for."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import Config, DeviceConfig
from agent.services.status import (
    OutboxFigures,
    StatusBuilder,
    StoreDbState,
    health_problem,
)


class Reserve:
    held, size, releases = True, 1024, 0


class Drops:
    def __init__(self) -> None:
        self.count = Counter({"quota": 2})


class Writer:
    seq, committed_total, transactions, queue_depth = 9, 8, 3, 1
    last_error, quarantined, alive = "", ["/x.quarantined"], True
    counts = None  # the file's figures stand

    def __init__(self) -> None:
        self.drops, self.reserve = Drops(), Reserve()


class Reader:
    opened = 0

    def __init__(self, path: Path) -> None:
        Reader.opened += 1
        self.fail = Reader.opened == 1  # the first reader's file was quarantined

    def stats(self) -> dict[str, Any]:
        if self.fail:
            raise OSError("file moved aside")
        return {"depth": 5}

    def close(self) -> None:
        pass


class Part:
    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def status(self) -> dict[str, Any]:
        return dict(self.fields)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.fields)

    def status_part(self) -> dict[str, Any]:
        return dict(self.fields)


class Touchpoints:
    def status(self) -> dict[str, dict[str, Any]]:
        return {"ble": {"adverts": 3}}


class Consent:
    withdrawn, withheld = {"a", "b"}, 4


class Db:
    damage = ""


class Moved:
    moved_to, reason = Path("/s/store.db.corrupt-1"), "file is not a database"


class Kpis:
    ignored = 1


def builder(db: Db, moved: Moved | None = None, uplink: Part | None = None,
            link: Part | None = None) -> StatusBuilder:
    Reader.opened = 0
    outbox = OutboxFigures(Path("/o/outbox.db"), Writer(), Reader)
    outbox.open()
    cfg = Config(device=DeviceConfig(store="store-1", id="dev-1"))
    ticks = iter([100.0, 112.34, 120.0, 130.0])
    return StatusBuilder("boot-1", lambda: cfg, True, outbox, uplink,
                         Part(uplink={"state": "running"}), Touchpoints(), link, Consent(),
                         Part(clients=2), StoreDbState(moved, db), {"kpis": 1}, Kpis(),
                         clock=lambda: next(ticks))


def test_the_document_has_every_part() -> None:
    doc = builder(Db(), uplink=Part(state="connected"), link=Part(applied=1)).build()
    agent = dict(doc["agent"])
    assert 5 < agent.pop("rss_mib") < 4096  # this process's, in MiB
    assert agent == {"version": __version__, "pid": os.getpid(), "bootid": "boot-1",
                            "store": "store-1", "device": "dev-1", "uptime_s": 12.3,
                            "config": Config().source, "config_version": None,
                            "config_trial": True}
    assert doc["outbox"]["error"] == "file moved aside"  # reported, status not failed
    assert doc["outbox"]["dropped_this_boot"] == {"quota": 2}
    assert doc["outbox"]["reserve"] == {"held": True, "bytes": 1024, "releases": 0}
    assert doc["uplink"] == {"state": "connected"}
    assert doc["components"] == {"uplink": {"state": "running"}}
    assert doc["ble"] == {"adverts": 3} and doc["link"] == {"applied": 1}
    assert doc["privacy"] == {"withdrawn": 2, "withheld_events": 4}
    assert doc["bus"] == {"clients": 2}
    assert doc["store_db"] == {"quarantined": [], "last_error": ""}
    assert doc["commit_hooks"] == {"failures": {"kpis": 1}, "kpi_ignored_values": 1}
    assert list(doc) == ["agent", "outbox", "uplink", "components", "ble", "link", "privacy",
                         "bus", "store_db", "commit_hooks"]  # as `status --json` showed it


def test_after_a_quarantined_outbox_the_next_look_reads_the_new_file() -> None:
    status = builder(Db())
    assert "error" in status.build()["outbox"]
    assert status.build()["outbox"]["depth"] == 5


def test_without_uplink_or_link_their_parts_say_so() -> None:
    doc = builder(Db()).build()
    assert doc["uplink"] == {"state": "disabled"} and "link" not in doc


def test_the_store_database_problem_says_what_to_do() -> None:
    moved = builder(Db(), Moved()).build()["store_db"]
    assert moved == {"quarantined": ["/s/store.db.corrupt-1"],
                     "last_error": "moved aside at start: file is not a database"}
    db = Db()
    db.damage = "disk image is malformed"
    assert builder(db).build()["store_db"]["last_error"].startswith(
        "damaged while running (disk image is malformed): restart the agent")


def test_health_names_a_stopped_writer_or_a_damaged_store_database() -> None:
    writer, db = Writer(), Db()
    assert health_problem(writer, StoreDbState(None, db)) is None
    db.damage = "malformed"
    assert health_problem(writer, StoreDbState(None, db)) == \
        "the store database is damaged (malformed)"
    writer.alive = False
    assert health_problem(writer, StoreDbState(None, db)) == \
        "the outbox writer thread has stopped"
