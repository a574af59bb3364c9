"""A soak: a long generated store day played at high speed while the agent process is
sampled — resident memory, open files, outbox depth — and a plot of them over store time
(SVG, no plotting library needed). Loss is what the scenario check finds missing."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from statistics import median
from typing import Any

from simulators.scenario.runner import Outcome, Runner


@dataclass
class Sample:
    store_h: float
    rss_mib: float
    fds: int
    depth: int
    uplink: str


@dataclass
class SoakResult:
    outcome: Outcome
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.samples
        quarter = max(1, len(s) // 4)
        first = [x.rss_mib for x in s[:quarter]] or [0.0]
        last = [x.rss_mib for x in s[-quarter:]] or [0.0]
        return {
            "store_hours": round(s[-1].store_h, 2) if s else 0.0,
            "samples": len(s),
            "rss_mib_first_quarter": round(median(first), 1),
            "rss_mib_last_quarter": round(median(last), 1),
            "rss_mib_max": round(max((x.rss_mib for x in s), default=0.0), 1),
            "fds_min": min((x.fds for x in s), default=0),
            "fds_max": max((x.fds for x in s), default=0),
            "outbox_depth_max": max((x.depth for x in s), default=0),
            "events_upstream": len(self.outcome.received.events),
            "problems": self.outcome.problems,
            "late_s": self.outcome.late_s,
            "wall_s": self.outcome.wall_s,
        }


def _proc(pid: int) -> tuple[float, int]:
    rss = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def soak(runner: Runner, every_s: float = 1.0) -> SoakResult:
    samples: list[Sample] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            if not runner.t0 or runner.stage.agent is None:
                continue
            with contextlib.suppress(Exception):  # the agent may be stopping
                st = runner.stage.status()
                rss, fds = _proc(runner.stage.agent_pid())
                samples.append(Sample(round(runner.store_time() / 3600, 3), round(rss, 1), fds,
                                      int(st["outbox"]["depth"]), st["uplink"]["state"]))

    thread = threading.Thread(target=sample, name="soak-sampler", daemon=True)
    thread.start()
    try:
        outcome = runner.run()
    finally:
        done.set()
        thread.join(10)
    return SoakResult(outcome, samples)


def plot_svg(samples: list[Sample], path: Path, title: str) -> None:
    """Three panels over store hours: RSS (MiB), open files, outbox depth; shaded where the
    uplink was not connected."""
    w, ph, left, top = 760, 150, 60, 40
    series = [("resident memory, MiB", [s.rss_mib for s in samples]),
              ("open files", [float(s.fds) for s in samples]),
              ("outbox depth, events", [float(s.depth) for s in samples])]
    hours = [s.store_h for s in samples] or [0.0]
    x_max = max(hours[-1], 1e-6)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + left + 20}" '
           f'height="{top + 3 * (ph + 40) + 20}" font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20" font-size="14">{escape(title, quote=False)}</text>']
    for i, (name, ys) in enumerate(series):
        y0 = top + i * (ph + 40)
        y_max = max([*ys, 1.0]) * 1.1
        out.append(f'<rect x="{left}" y="{y0}" width="{w}" height="{ph}" fill="none" '
                   'stroke="#999"/>')
        for s, x in zip(samples, hours, strict=False):
            if s.uplink != "connected":
                out.append(f'<rect x="{left + w * x / x_max:.1f}" y="{y0}" width="2" '
                           f'height="{ph}" fill="#fbb" opacity="0.5"/>')
        pts = " ".join(f"{left + w * x / x_max:.1f},{y0 + ph - ph * y / y_max:.1f}"
                       for x, y in zip(hours, ys, strict=False))
        out.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
        label = escape(name, quote=False)
        out.append(f'<text x="{left}" y="{y0 - 6}">{label} (max {max([*ys, 0.0]):g})</text>')
        out.append(f'<text x="{left - 6}" y="{y0 + 10}" text-anchor="end">{y_max:.0f}</text>')
        out.append(f'<text x="{left - 6}" y="{y0 + ph}" text-anchor="end">0</text>')
    y_axis = top + 3 * (ph + 40) - 25
    out.append(f'<text x="{left}" y="{y_axis}">store hours 0 … {x_max:.1f} '
               '(red: uplink not connected)</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")

