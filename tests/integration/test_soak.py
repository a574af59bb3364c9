"""The CI-sized soak: `o2o-edge soak` plays a generated two-hour store day with a broker
outage and a network cut at high speed, samples the agent process and plots it. The long
version is the same command with more hours (see the README)."""

from __future__ import annotations

import csv
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import CLI, ROOT, need


def test_ci_sized_soak_loses_nothing_and_leaks_neither_memory_nor_files(tmp_path: Path) -> None:
    need("mosquitto", "mosquitto")
    need("dbus-daemon", "dbus")
    out = tmp_path / "soak"
    res = subprocess.run([*CLI, "soak", "--hours", "2", "--speed", "450", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == [] and summary["events_upstream"] > 30
    with (out / "samples.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["samples"] >= 8
    # the outage was seen and events waited in the outbox meanwhile (that they all arrived
    # afterwards is the empty list of problems above)
    assert {r["uplink"] for r in rows} - {"connected"}, "no sample saw the uplink down"
    assert summary["outbox_depth_max"] > 0
    # no leak: open files stay within a few of where they started, memory within 20 MiB
    assert summary["fds_max"] - summary["fds_min"] <= 8, summary
    assert summary["rss_mib_last_quarter"] - summary["rss_mib_first_quarter"] < 20, summary
    # the day has a camera: its process is sampled beside the agent, and plotted
    cameras = [float(r["camera_rss_mib"]) for r in rows]
    assert min(cameras[:-1]) > 10 and summary["camera_rss_mib_max"] == max(cameras), summary
    assert summary["rss_mib_with_camera_max"] >= summary["rss_mib_max"] + min(cameras[:-1])
    svg = ET.parse(out / "soak.svg").getroot()  # noqa: S314 - the file the command just wrote
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert [p.get("class") for p in lines].count("camera") == 1
    assert len(lines) == 4 and all(len(p.get("points", "").split()) == len(rows) for p in lines)
    # sampled from the opening to the end of the drain: the last sample has nothing waiting
    assert float(rows[0]["store_h"]) >= 0 and rows[-1]["outbox_depth"] == "0", rows[-1]
    assert float(rows[-1]["store_h"]) > 2.0  # past the closing: the drain is in the plot
    shaded = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "outage"]
    assert shaded and max(float(r.get("width", 0)) for r in shaded) > 2
