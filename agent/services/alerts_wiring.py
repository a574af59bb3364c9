"""Staff alerts made from the configuration: the repository on the store database, the
service, and what raises alerts — one object the composition root wires (its bus operations,
its commit hook, its task, its table group)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.checkin import StoreDb
from agent.config import Config
from agent.services.alerts import Alerts, Op
from agent.services.alerts_store import AlertStore
from agent.services.alerts_watch import AlertWatch
from agent.storedb import StoreDatabase


@dataclass(frozen=True)
class StaffAlerts:
    store: AlertStore  # the table group (retention, erasure): borrows the store database
    alerts: Alerts
    watch: AlertWatch

    def ops(self) -> dict[str, Op]:
        return self.alerts.ops()


def staff_alerts(cfg: Config, store: StoreDatabase,
                 emit: Callable[[str, Any], object]) -> StaffAlerts:
    repo = AlertStore(store)
    alerts = Alerts(repo, emit, cfg.staff.escalate_after_s)
    watch = AlertWatch(alerts, StoreDb(store), cfg.staff.device_down_after_s,
                       cfg.outbox.max_bytes, cfg.staff.outbox_alert_percent)
    return StaffAlerts(repo, alerts, watch)
