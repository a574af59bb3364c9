"""`o2o-edge scenario FILE`, `o2o-edge soak` and `o2o-edge demo`: a simulated store — the real
agent and kiosk on the hardware simulators — playing a store day, checked against what the
day must leave upstream.

The simulators register these commands themselves (entry points of the group
"o2o_edge.commands" in pyproject.toml); the agent's command line finds them there and runs
without them when the simulators are not installed. What a command needs beyond argparse is
imported when it runs: the runner brings OpenCV, Textual and every simulator, and
`o2o-edge --help` should not wait for them."""

from __future__ import annotations

import argparse
import contextlib
import json
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import simulators
from agent.cli.oserrors import describe

SCENARIOS = Path(simulators.__file__).resolve().parent / "scenarios"
BROKER_CHOICES = "mosquitto, nats, rabbitmq (private), mqtt://HOST:PORT or none"


def add_scenario_parser(sub: Any) -> None:
    p = sub.add_parser("scenario", help="play a store day (scenario file) on the simulators "
                                        "and check what reached the collector")
    p.add_argument("file", type=Path, help="the scenario (TOML), e.g. "
                                           "simulators/scenarios/store_day.toml")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(handler=cmd_scenario)


def add_soak_parser(sub: Any) -> None:
    p = sub.add_parser("soak", help="a long generated store day at high speed: RSS, open "
                                    "files, outbox depth and loss over time, with a plot")
    p.add_argument("--hours", type=float, default=8.0, help="store hours (default 8)")
    p.add_argument("--no-faults", action="store_true", help="no broker/network faults")
    p.add_argument("--out", type=Path, default=Path("soak"),
                   help="folder for soak.svg, samples.csv and summary.json (default ./soak)")
    _common(p)
    p.set_defaults(handler=cmd_soak)


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="a simulated store morning: the real agent and kiosk on the "
                                    "simulators, with a live view, syncing to a broker on "
                                    "localhost or a private one")
    p.add_argument("--scenario", type=Path, default=SCENARIOS / "demo_morning.toml")
    p.add_argument("--speed", type=float, help="store seconds per wall second (default: the "
                                               "scenario's)")
    p.add_argument("--broker", help=f"{BROKER_CHOICES} (default: 127.0.0.1:1883 if a broker "
                                    "answers there, else a private mosquitto, else none)")
    p.add_argument("--private", action="store_true", help="always start a private mosquitto")
    p.add_argument("--workdir", type=Path, help="keep the run's files here")
    p.set_defaults(handler=cmd_demo)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default="mosquitto", help=f"{BROKER_CHOICES} "
                                                          "(default mosquitto)")
    p.add_argument("--speed", type=float, help="store seconds per wall second")
    p.add_argument("--workdir", type=Path, help="keep the run's files here (default: a "
                                                "temporary folder, removed)")


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="o2o-edge-store-") as tmp:
        yield Path(tmp)


MAX_SCENARIO_BYTES: Final = 1024 * 1024  # a scenario is a few KiB of TOML


def _load(path: Path, speed: float | None) -> Any:
    """The scenario at `path`, or ScenarioError saying what is wrong with the file: only a
    regular file is read (a FIFO would block), of a sane size, as UTF-8."""
    from simulators.scenario.model import ScenarioError, load

    if speed is not None and not 0 < speed <= 1e6:  # also refuses nan
        raise ScenarioError(f"--speed {speed}: store seconds per wall second, more than 0 "
                            "and at most 1000000")
    try:
        st = path.stat()
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario: {describe(exc)}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: not a scenario file (give a TOML file of at most "
                            f"{MAX_SCENARIO_BYTES:,} bytes, like simulators/scenarios/"
                            "store_day.toml)")
    try:
        return load(path)
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except RecursionError:
        raise ScenarioError(f"{path} is not valid TOML: nested too deeply") from None


def _print(line: str) -> None:
    print(line, flush=True)


def cmd_scenario(args: argparse.Namespace) -> int:
    from simulators.scenario.model import ScenarioError
    from simulators.scenario.runner import Runner

    try:
        sc = _load(args.file, args.speed)
        with _workdir(args.workdir) as wd:
            out = Runner(sc, wd, args.broker, progress=None if args.json else _print,
                         speed=args.speed).run()
    except ScenarioError as exc:
        print(f"o2o-edge scenario: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"expected": out.expected.as_json(), "problems": out.problems,
                          "events_upstream": len(out.received.events),
                          "final_seq": out.final_seq, "late_s": out.late_s,
                          "wall_s": out.wall_s}))
    else:
        _verdict(out.problems, len(out.received.events))
    return 1 if out.problems else 0


def _verdict(problems: list[str], events: int, where: str = "upstream") -> None:
    if not problems:
        print(f"all as expected: {events} events {where}, each once, no seq gaps, every "
              "check-in and loyalty card answered as the scenario says, no Bluetooth address")
    for p in problems:
        print(f"PROBLEM: {p}")


def cmd_soak(args: argparse.Namespace) -> int:
    from simulators.scenario.generate import store_day
    from simulators.scenario.model import ScenarioError
    from simulators.scenario.runner import Runner
    from simulators.scenario.soak import plot_svg, soak

    if not 0 < args.hours <= 24 * 7 or not 0 < (args.speed or 300.0) <= 1e6:
        print("o2o-edge soak: --hours: more than 0 and at most 168; --speed: more than 0 "
              "and at most 1000000", file=sys.stderr)
        return 2
    sc = store_day(args.hours, args.speed or 300.0, faults=not args.no_faults)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with _workdir(args.workdir) as wd:
            res = soak(Runner(sc, wd, args.broker, progress=None))
    except ScenarioError as exc:
        print(f"o2o-edge soak: {exc}", file=sys.stderr)
        return 2
    summary = res.summary()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (args.out / "samples.csv").open("w") as fh:
        fh.write("store_h,rss_mib,open_files,outbox_depth,uplink,camera_rss_mib\n")
        for s in res.samples:
            fh.write(f"{s.store_h},{s.rss_mib},{s.fds},{s.depth},{s.uplink},"
                     f"{s.camera_rss_mib}\n")
    plot_svg(res.samples, args.out / "soak.svg",
             f"o2o-edge soak: {args.hours:g} store hours at {sc.speed:g}x and the drain after "
             f"closing, {summary['events_upstream']} events upstream", closes_h=args.hours)
    print(json.dumps(summary, indent=2))
    print(f"plot: {args.out / 'soak.svg'}")
    return 1 if res.outcome.problems else 0


def _pick_broker(args: argparse.Namespace) -> str:
    from simulators.brokers import PrivateMosquitto, installed, port_open

    if args.broker:
        return str(args.broker)
    if not args.private and port_open("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883"
    return "mosquitto" if installed(PrivateMosquitto) else "none"


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from simulators.live_view import LiveView, Timeline
    from simulators.scenario.expected import expected
    from simulators.scenario.model import ScenarioError
    from simulators.scenario.runner import Runner
    from simulators.story import Story, summary

    broker = _pick_broker(args)
    try:
        sc = _load(args.scenario, args.speed)
    except ScenarioError as exc:
        print(f"o2o-edge demo: {exc}", file=sys.stderr)
        return 2
    speed = args.speed or sc.speed
    print(f"demo: {sc.store}/{sc.device}, {sc.hours:g} store hours at {speed:g}x (about "
          f"{sc.length_s / speed:.0f} s of play, plus start and end); broker: {broker}",
          flush=True)
    if broker == "none":
        print("demo: no broker here (apt-get install mosquitto for one): the agent keeps "
              "every event in its outbox", flush=True)
    story = Story(sc, expected(sc))
    started = time.monotonic()
    with _workdir(args.workdir) as wd:
        runner = Runner(sc, wd, broker, progress=lambda line: _print(f"demo: {line}"),
                        speed=args.speed)

        def clock() -> str:
            return str(runner.clock_text(max(0.0, runner.store_time()) if runner.t0 else 0.0))

        timeline = Timeline(clock)
        runner.narrator = lambda t, what: timeline.line(what)
        view = LiveView(runner, story, timeline)
        view.start()
        try:
            out = runner.run()
        except KeyboardInterrupt:
            view.close()
            print("demo: stopped; everything it started is stopped too", flush=True)
            for line in summary(sc, story.ex, story.tally, finished=False,
                                wall_s=time.monotonic() - started, problems=None,
                                upstream=None, broker=broker,
                                reached=runner.store_time() if runner.t0 else 0.0):
                _print(line)
            return 130
        except ScenarioError as exc:
            print(f"o2o-edge demo: {exc}", file=sys.stderr)
            return 2
        finally:
            view.close()
    for line in summary(sc, out.expected, story.tally, finished=True, wall_s=out.wall_s,
                        problems=out.problems, upstream=len(out.received.events),
                        broker=broker):
        _print(line)
    return 1 if out.problems else 0
