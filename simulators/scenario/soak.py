"""A soak: a long generated store day played at high speed while the agent process is
sampled — resident memory (its own and its QR camera process's), open files, outbox depth —
and a plot of them over store time (SVG, no plotting library needed). Loss is what the
scenario check finds missing."""

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
    camera_rss_mib: float = 0.0  # the agent's child processes (the QR camera's), 0 without


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
            "camera_rss_mib_max": round(max((x.camera_rss_mib for x in s), default=0.0), 1),
            "rss_mib_with_camera_max": round(max((x.rss_mib + x.camera_rss_mib for x in s),
                                                 default=0.0), 1),
            "fds_min": min((x.fds for x in s), default=0),
            "fds_max": max((x.fds for x in s), default=0),
            "outbox_depth_max": max((x.depth for x in s), default=0),
            "events_upstream": len(self.outcome.received.events),
            "problems": self.outcome.problems,
            "late_s": self.outcome.late_s,
            "wall_s": self.outcome.wall_s,
        }


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _children_rss(pid: int) -> float:
    """The resident memory of the agent's child processes (its QR camera's)."""
    total = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
            for child in fh.read().split():
                with contextlib.suppress(OSError, ValueError):
                    total += _rss(int(child))
    return total


def _proc(pid: int) -> tuple[float, int, float]:
    return _rss(pid), len(os.listdir(f"/proc/{pid}/fd")), _children_rss(pid)


def soak(runner: Runner, every_s: float = 1.0) -> SoakResult:
    """Play the runner's day, sampling the agent every `every_s` wall seconds from the store's
    opening to the end of the drain: a last sample is taken once the backlog is upstream,
    just before the agent is stopped."""
    samples: list[Sample] = []
    done = threading.Event()

    def take() -> None:
        with contextlib.suppress(Exception):  # the agent may be stopping
            st = runner.stage.status()
            rss, fds, camera = _proc(runner.stage.agent_pid())
            at = max(0.0, runner.store_time()) / 3600  # from the opening, not before it
            samples.append(Sample(round(at, 3), round(rss, 1), fds,
                                  int(st["outbox"]["depth"]), st["uplink"]["state"],
                                  round(camera, 1)))

    def sample() -> None:
        while not done.wait(every_s):
            if runner.t0 and runner.stage.agent is not None:
                take()

    runner.stage.before_agent_stops = take
    thread = threading.Thread(target=sample, name="soak-sampler", daemon=True)
    thread.start()
    try:
        outcome = runner.run()
    finally:
        done.set()
        thread.join(10)
    return SoakResult(outcome, samples)


def _outages(samples: list[Sample]) -> list[tuple[float, float]]:
    """Spans of store hours when the uplink was not connected: from the first sample that saw
    it down to the next that saw it up (or the last)."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for s in samples:
        if s.uplink != "connected" and start is None:
            start = s.store_h
        elif s.uplink == "connected" and start is not None:
            spans.append((start, s.store_h))
            start = None
    if start is not None and samples:
        spans.append((start, samples[-1].store_h))
    return spans


def plot_svg(samples: list[Sample], path: Path, title: str, closes_h: float | None = None) -> None:
    """Three panels over store hours from the opening to the last sample (the drain after
    closing included): RSS (MiB: the agent's, and its camera process's in a second line),
    open files, outbox depth; the spans when the uplink was not connected shaded, the
    closing marked."""
    w, ph, left, top, gap = 760, 150, 60, 40, 46
    camera = [s.camera_rss_mib for s in samples]
    series = [("resident memory, MiB (the agent; orange: its camera process)",
               [s.rss_mib for s in samples]),
              ("open files", [float(s.fds) for s in samples]),
              ("outbox depth, events", [float(s.depth) for s in samples])]
    hours = [s.store_h for s in samples] or [0.0]
    x_max = max(hours[-1], closes_h or 0.0, 1e-6)

    def x_of(h: float) -> float:
        return left + w * min(max(h, 0.0), x_max) / x_max

    height = top + 3 * (ph + gap) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + left + 20}" '
           f'height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{escape(title, quote=False)}</text>']
    outages = _outages(samples)
    step = 0.5 if x_max <= 4 else 1.0 if x_max <= 12 else 3.0
    for i, (name, ys) in enumerate(series):
        y0 = top + i * (ph + gap)
        extra = camera if i == 0 and any(camera) else []
        y_max = max([*ys, *extra, 1.0]) * 1.1
        for a, b in outages:
            out.append(f'<rect class="outage" x="{x_of(a):.1f}" y="{y0}" '
                       f'width="{max(x_of(b) - x_of(a), 2.0):.1f}" height="{ph}" '
                       'fill="#f8c4c4"/>')
        if closes_h is not None:
            out.append(f'<line class="closing" x1="{x_of(closes_h):.1f}" y1="{y0}" '
                       f'x2="{x_of(closes_h):.1f}" y2="{y0 + ph}" stroke="#555" '
                       'stroke-dasharray="4 3"/>')
        out.append(f'<rect class="frame" x="{left}" y="{y0}" width="{w}" height="{ph}" '
                   'fill="none" stroke="#999"/>')
        pts = " ".join(f"{x_of(x):.1f},{y0 + ph - ph * y / y_max:.1f}"
                       for x, y in zip(hours, ys, strict=False))
        out.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
        if extra:
            pts = " ".join(f"{x_of(x):.1f},{y0 + ph - ph * y / y_max:.1f}"
                           for x, y in zip(hours, extra, strict=False))
            out.append(f'<polyline class="camera" points="{pts}" fill="none" stroke="#ef6c00" '
                       'stroke-width="1.5"/>')
        label = escape(name, quote=False)
        out.append(f'<text x="{left}" y="{y0 - 6}">{label} (max {max([*ys, 0.0]):g})</text>')
        out.append(f'<text x="{left - 6}" y="{y0 + 10}" text-anchor="end">{y_max:.0f}</text>')
        out.append(f'<text x="{left - 6}" y="{y0 + ph}" text-anchor="end">0</text>')
        tick = 0.0
        while tick <= x_max + 1e-9:
            out.append(f'<text class="tick" x="{x_of(tick):.1f}" y="{y0 + ph + 14}" '
                       f'text-anchor="middle" font-size="10">{tick:g}</text>')
            tick += step
    y_axis = height - 8
    closing = f"; dashed: the store closes at {closes_h:g} h, then the backlog drains" \
        if closes_h is not None else ""
    out.append(f'<text x="{left}" y="{y_axis}">store hours after opening, 0 to '
               f'{x_max:.2f} (shaded: uplink not connected{closing})</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
