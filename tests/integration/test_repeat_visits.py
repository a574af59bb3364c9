"""Repeat visits through the agent process: opted-in apps' visits on the bus, an app back
after the agent restarted counts as a repeat, and
`o2o-edge report` shows the repeats and their share of the visits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from agent.bus.client import BusClient
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config


def visit(app: str) -> dict[str, object]:
    return {"type": "o2o.ble.presence",
            "data": {"id": app, "kind": "app", "action": "exit", "at": 0.0, "dwell_s": 300}}


def test_repeat_visits_in_the_report(tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="",
                       extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
                             '[metrics]\nlisten = ""\n')

    def run(apps: list[str], visits: int) -> dict[str, object]:
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        with BusClient(tmp_path / "agent.sock") as bus:
            bus.emit([visit(a) for a in apps])

            def summary() -> dict[str, object]:
                return dict(bus.request({"op": "kpis"})["summary"])
            wait_for(lambda: summary().get("visits") == visits, 20, what=lambda: summary())
            s = summary()
        assert agent.stop() == 0
        return s

    first = run(["app:u:1:1", "app:u:1:2", "app:u:1:1"], 3)
    assert first["visits.repeat"] == 1
    # the next day's visits, as far as the agent knows: after a restart, the apps seen stay
    second = run(["app:u:1:2", "app:u:1:3"], 5)
    assert second["visits.repeat"] == 2 and second["conversion.visit_repeat"] == 0.4
    res = subprocess.run([*CLI, "report", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"]["visits.repeat"] == 2
    text = subprocess.run([*CLI, "report", "--config", str(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60).stdout
    assert "Repeat visits (the app seen before, within the retention days)" in text
    assert "Visits that were repeat visits" in text and "40 %" in text
