"""A scenario's day played on the simulators with the real agent and kiosk: the KPIs that
`o2o-edge report --json` gives for it are the ones worked out from the scenario file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulators.scenario.kpis import expected_kpis, fixed_part
from simulators.scenario.model import load
from simulators.scenario.runner import Runner
from tests.conftest import CLI, ROOT, need

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"


@pytest.mark.parametrize("name", ["short_visit.toml", "till_sale.toml"])
def test_the_reports_kpis_are_the_scenarios(tmp_path: Path, name: str) -> None:
    need("dbus-daemon", "dbus")
    need("mosquitto", "mosquitto")
    sc = load(SCENARIOS / name)
    log: list[str] = []
    out = Runner(sc, tmp_path / "store", "mosquitto", progress=log.append).run()
    assert not out.problems, "\n".join([*out.problems, "--- what happened:", *log])
    res = subprocess.run([*CLI, "report", "--json", "--config",
                          str(tmp_path / "store" / "config.toml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    want = expected_kpis(sc, out.expected)
    if name == "short_visit.toml":  # what the file says, read by a person
        assert want == {"taps": 1, "scans": 2, "scans.product": 1, "scans.pickup": 1,
                        "checkins": 2, "checkins.ok": 2, "checkins.pickup": 2,
                        "survey.answers": 1, "survey.s5.answers": 1, "survey.average": 5.0,
                        "survey.s5.average": 5.0}
    assert fixed_part(json.loads(res.stdout)["summary"]) == want, "\n".join(log)
