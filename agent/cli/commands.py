"""Handlers of the everyday commands: run, emit, status, tail, outbox, config."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Final

from agent.bus.client import BusClient
from agent.cli.lines import bounded_lines
from agent.cli.oserrors import describe
from agent.config import Config, load_config, read_overlay, render_toml
from agent.config_checks import identity_problems
from agent.contracts.bus import EventIn
from agent.contracts.status import Status
from agent.doctor.dirs import dir_problems
from agent.errors import AgentError, ConfigError, Reason
from agent.statepaths import RemoteConfigFiles

log = logging.getLogger(__name__)

EMIT_CHUNK = 500
# one stdin line, and one chunk of lines sent as one bus request: under the bus's 1 MiB
# request line with room for the request around the events
MAX_EMIT_LINE: Final = 512 * 1024


def _bus(cfg: Config, timeout: float | None = 30.0) -> BusClient:
    """A client of the running agent; a socket path that cannot even be tried (under a file,
    too long, not a socket) is one line naming it."""
    try:
        return BusClient(cfg.bus.socket, timeout=timeout)
    except OSError as exc:
        raise AgentError(Reason.BUS_UNAVAILABLE,
                         f"cannot reach the agent at {cfg.bus.socket} ({describe(exc)}); check "
                         f"[bus] socket in {cfg.source}") from None


def _load_with_remote(explicit: str | None) -> tuple[Config, bool]:
    """The configuration with the remote overlay: a pending one on trial (True) if there is
    one and it loads, else the applied one, else the file alone."""
    files = RemoteConfigFiles.here()
    for path, trial in ((files.pending, True), (files.applied, False)):
        overlay = read_overlay(path) if path.exists() else None
        if overlay is None:
            continue
        try:
            return load_config(explicit, overlay=overlay), trial
        except ConfigError as exc:
            log.warning("remote config %s not usable (%s); set aside", path.name, exc)
            path.replace(path.with_suffix(".refused"))
    return load_config(explicit), False


def cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import Agent

    cfg, trial = _load_with_remote(args.config)
    if identity := identity_problems(cfg):  # a device not yet named for the fleet: no start
        raise ConfigError("; ".join(identity))
    problems = dir_problems(cfg)
    if problems:  # one line for each, and nothing started
        raise ConfigError("; ".join(map(str, problems)) + f" (settings from {cfg.source})")
    # `kill -USR2 <pid>`: every thread's stack into the log, for an agent that seems stuck
    faulthandler.register(signal.SIGUSR2, all_threads=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(cfg, trial=trial).run(stop)

    asyncio.run(main())
    return 0


def _parse_line(lineno: int, line: str) -> EventIn | None:
    """The event of one stdin line, or None after saying on stderr what is wrong with it."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        print(f"o2o-edge: line {lineno}: not JSON ({str(exc)[:200]}); skipped", file=sys.stderr)
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        print(f'o2o-edge: line {lineno}: needs an object with "type" and "data"; skipped',
              file=sys.stderr)
        return None
    ev: EventIn = {"type": obj["type"], "data": obj.get("data")}
    if "priority" in obj:  # checked by the agent, which says what is wrong with it
        ev["priority"] = obj["priority"]
    return ev


def _stdin_chunks(stream: BinaryIO, bad: list[int]
                  ) -> Iterator[list[tuple[int, EventIn]]]:
    """Chunks of at most EMIT_CHUNK events and about MAX_EMIT_LINE bytes (one bus request
    line each), read as they come; the numbers of bad lines are appended to `bad`."""
    chunk: list[tuple[int, EventIn]] = []
    size = 0
    for lineno, line, problem in bounded_lines(stream, MAX_EMIT_LINE):
        if problem:
            print(f"o2o-edge: line {lineno}: {problem}; skipped", file=sys.stderr)
        if problem or not line.strip():
            bad += [lineno] if problem else []
            continue
        ev = _parse_line(lineno, line)
        if ev is None:
            bad.append(lineno)
            continue
        if chunk and (len(chunk) >= EMIT_CHUNK or size + len(line) > MAX_EMIT_LINE):
            yield chunk
            chunk, size = [], 0
        chunk.append((lineno, ev))
        size += len(line)
    if chunk:
        yield chunk


def cmd_emit(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not args.event_type and args.data is not None:
        print("o2o-edge emit: --data needs --type (events read from stdin carry their own "
              "data)", file=sys.stderr)
        return 2
    if args.event_type:
        try:
            data = json.loads(args.data if args.data is not None else "{}")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            print(f"o2o-edge: --data is not JSON the agent takes: {str(exc)[:200]}",
                  file=sys.stderr)
            return 2
        ev: EventIn = {"type": args.event_type, "data": data}
        if args.priority is not None:
            ev["priority"] = args.priority
        with _bus(cfg) as bus:
            _print_ids(bus.emit([ev]))
        return 0
    bad: list[int] = []
    failed = 0
    sent = 0
    with _bus(cfg) as bus:
        for chunk in _stdin_chunks(sys.stdin.buffer, bad):
            sent += len(chunk)
            if args.priority is not None:  # for the lines that do not say their own
                for _, e in chunk:
                    e.setdefault("priority", args.priority)
            try:
                ids = bus.emit([e for _, e in chunk])
            except AgentError as exc:
                if exc.reason is not Reason.INVALID_EVENT:
                    raise
                failed += _emit_one_by_one(bus, chunk)
                continue
            _print_ids(ids)
            sys.stdout.flush()
    if not sent and not bad and args.priority is not None:
        print("o2o-edge emit: --priority without --type applies to events read from stdin, "
              "and none came; give --type to send one event", file=sys.stderr)
        return 2
    return 1 if (bad or failed) else 0


def _print_ids(ids: list[str | None]) -> None:
    """One line per event: its id, or "withheld" (an app user whose consent is withdrawn:
    the agent kept nothing of it)."""
    for event_id in ids:
        print("withheld" if event_id is None else event_id)


def _emit_one_by_one(bus: BusClient, chunk: list[tuple[int, EventIn]]) -> int:
    """A chunk was refused: find the offending lines, commit the rest."""
    failed = 0
    for lineno, ev in chunk:
        try:
            _print_ids(bus.emit([ev]))
        except AgentError as exc:
            if exc.reason is not Reason.INVALID_EVENT:
                raise
            print(f"o2o-edge: line {lineno}: {exc}", file=sys.stderr)
            failed += 1
    return failed


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%H:%M:%S", time.localtime(ts))


def _pos_lines(st: Status) -> list[str]:
    """The tills: what they recorded and, with the endpoint on, what it refused."""
    if "pos" not in st:
        return []
    p = st["pos"]
    e = p.get("endpoint")
    if e is None and not any(v for v in p.values() if isinstance(v, int)):
        return []  # no endpoint and nothing from the bus either: no tills here
    lines = [f"tills      sales={p['sales']} refunds={p['refunds']} resent={p['replayed']} "
             f"conflicts={p['conflicts']} refused={p['refused']}  offers "
             f"redeemed={p['offers_redeemed']} refused={p['offers_refused']}"]
    if e is not None:
        lines.append(f"           on {', '.join(e['listening']) or '-'}  "
                     f"requests={e['requests']}  unauthorized={e['unauthorized']}  "
                     f"rate-limited={e['limited']}  too large={e['too_large']}  "
                     f"too slow={e['slow_clients']}")
    return lines


def _certificate_lines(st: Status) -> list[str]:
    """The device's certificate: until when, when the agent renews it, what went wrong."""
    if "certificate" not in st:
        return []
    c = st["certificate"]

    def day(ts: float | None) -> str:
        return "-" if ts is None else time.strftime("%Y-%m-%d", time.gmtime(ts))

    line = (f"certificate expires {day(c['expires'])}  renews from {day(c['renews_from'])}"
            f"  renewed={c['renewals']}")
    if c["requested"]:
        line += "  (asked the CA, waiting for its answer)"
    return [line] + ([f"           {c['last_problem']}"] if c["last_problem"] else [])


def _catalog_lines(st: Status) -> list[str]:
    """The catalog the kiosk's product cards read: its size, snapshot and how old its
    prices are; a snapshot still waiting for parts."""
    if "catalog" not in st:
        return []
    c = st["catalog"]
    if not c["products"] and not c["waiting_parts"]:
        return ["catalog    empty (no catalog document applied yet)"]
    ages = c["prices_age_s"]
    n = c["products"]
    line = (f"catalog    {n} product{'' if n == 1 else 's'}  snapshot {c['snapshot'] or '-'}"
            f" (v{c['version']})  prices {_age(ages.get('newest'))} old")
    if ages.get("oldest") is not None and ages.get("oldest") != ages.get("newest"):
        line += f" (the oldest {_age(ages['oldest'])})"
    out = [line]
    if c["waiting_parts"]:
        out.append(f"           a new snapshot waits for {c['waiting_parts']} parts from "
                   "the broker")
    return out


def _hardware_lines(st: Status) -> list[str]:
    """One line per touchpoint driver with its state, and the last problem with its fix."""
    lines = []
    if "ble" in st:
        sc = st["ble"]["scanner"]
        lines.append(f"ble        {sc.get('state')}  adverts={st['ble'].get('adverts', 0)}")
        if sc.get("recent_errors"):
            lines.append(f"           {sc['recent_errors'][-1]}")
    if "nfc" in st:
        r = st["nfc"]["reader"]
        lines.append(f"nfc        {r.get('state')}  {r.get('reader')}  taps={st['nfc']['taps']}"
                     f"  malformed={st['nfc']['malformed_ndef']}")
        if r.get("recent_errors"):
            lines.append(f"           {r['recent_errors'][-1]}")
    if "qr" in st:
        q, cam = st["qr"], st["qr"]["camera"]
        lines.append(f"qr         {cam.get('state')}  {cam.get('source')}  scans={q['scans']}"
                     f"  rejected={q['rejected']}  decode {q.get('decode_ms_avg')} ms"
                     f"  dropped frames={cam.get('dropped')}")
        if cam.get("last_error") and cam.get("state") != "capturing":
            lines.append(f"           {cam['last_error']}")
    return lines


def format_status(st: Status) -> str:
    a, o, u = st["agent"], st["outbox"], st["uplink"]
    lines = [
        f"agent      {a['version']}  store={a['store']} device={a['device']}  "
        f"up {_age(a['uptime_s'])}  pid {a['pid']}",
        f"uplink     {u.get('state')}  {u.get('url', '')}  (MQTT {u.get('protocol', '-')})"
        f"  connects={u.get('connects', 0)}  in-flight={u.get('inflight_batches', 0)}",
        f"           sent={u.get('acked_events', 0)} events  last ack {_when(u.get('last_ack'))}",
        f"outbox     depth={o.get('depth', '?')}  oldest={_age(o.get('oldest_age_s'))}  "
        f"bytes={o.get('bytes', '?')}  file={o.get('file_bytes', '?')}",
        f"           dropped={o.get('dropped') or 'none'}",
    ]
    for label, err in (("uplink", u.get("last_error")), ("outbox", o.get("last_error"))):
        if err:
            lines.append(f"last error {label}: {err}")
    lines += _certificate_lines(st)
    lines += _hardware_lines(st)
    lines += _catalog_lines(st)
    lines += _pos_lines(st)
    lines.append("components")
    for name, h in st["components"].items():
        extra = f"  restarts={h['restarts']}" if h["restarts"] else ""
        err = f"  last error: {h['last_error']}" if h["last_error"] else ""
        lines.append(f"  {name:<12} {_component_state(name, h['state'])}{extra}{err}")
    return "\n".join(lines)


# a component that returned had nothing (more) to do; for these, what that means
_DONE: Final = {
    "watchdog": "off (systemd's watchdog is not watching: the agent was not started by a "
                "unit with WatchdogSec)",
}
_STATES: Final = {"running": "running", "restarting": "restarting after a failure",
                  "stopped": "stopped", "finished": "done (nothing left to do)"}


def _component_state(name: str, state: str) -> str:
    if state == "finished" and name in _DONE:
        return _DONE[name]
    return _STATES.get(state, state)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with _bus(cfg) as bus:
        st = bus.status()
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
    else:
        print(format_status(st))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    if args.count < 0:
        raise ConfigError("-n/--count: a number of events, 0 (no limit) or more")
    cfg = load_config(args.config)
    seen = 0
    with _bus(cfg, timeout=None) as bus:
        for event in bus.subscribe():
            if args.json:
                print(json.dumps(event, separators=(",", ":")), flush=True)
            else:
                print(tail_line(event), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0


TAIL_FIELDS_MAX: Final = 160  # characters of key fields on a tail line


def _printable(value: object, limit: int = 40) -> str:
    """A value from an event as safe text: control characters (a terminal escape in a tag's
    text) shown escaped, long text cut."""
    text = str(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_fields(data: object) -> str:
    """The event's scalar fields (and those one level down: tag.kind=shelf), in its order;
    a list is counted, not printed."""
    if not isinstance(data, dict):
        return _printable(data) if data is not None else ""
    parts: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            parts += [f"{key}.{k}={_printable(v)}" for k, v in value.items()
                      if isinstance(v, str | int | float | bool)][:3]
        elif isinstance(value, list):
            parts.append(f"{key}=[{len(value)}]")
        elif value is not None:
            parts.append(f"{key}={_printable(value)}")
    out = " ".join(_printable(p, TAIL_FIELDS_MAX) for p in parts)
    return out if len(out) <= TAIL_FIELDS_MAX else out[: TAIL_FIELDS_MAX - 1] + "…"


def tail_line(event: Mapping[str, Any]) -> str:
    """One event as one line: local time, seq, type and the key fields of its data."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(str(event.get("time", "")).replace("Z", "+00:00"))
        clock = when.astimezone().strftime("%H:%M:%S")
    except ValueError:
        clock = "--:--:--"
    flags = " (historical)" if event.get("historical") else ""
    return (f"{clock}  #{event.get('seq', '?'):<6} {_printable(event.get('type'), 40):<28} "
            f"{_key_fields(event.get('data'))}{flags}").rstrip()


def _reader(args: argparse.Namespace) -> Any:
    from agent.outbox import open_reader

    cfg = load_config(args.config)
    try:
        return open_reader(cfg.outbox.path)
    except FileNotFoundError as exc:
        raise AgentError(Reason.OUTBOX_CLOSED, str(exc)) from None


def cmd_outbox_stats(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        st = reader.stats(detail=True)
    finally:
        reader.close()
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(format_outbox_stats(st))
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# what each priority holds (agent/contracts/events.py gives every type its priority)
PRIORITY_WORDS: Final = {9: "check-ins, staff calls, agent reports", 7: "taps, scans, kiosk",
                         5: "presence", 2: "beacon telemetry"}


def format_outbox_stats(st: dict[str, Any]) -> str:
    """The outbox as a table a person reads: what waits, since when, how big, what was
    dropped and why."""
    rows = [("file", str(st.get("path", "-"))),
            ("waiting", f"{st.get('depth', 0):,} events"),
            ("oldest", _age(st.get("oldest_age_s")) + (" old" if st.get("oldest_age_s")
                                                        is not None else " (none waiting)")),
            ("events", _size(st.get("bytes"))),
            ("file size", f"{_size(st.get('file_bytes'))} ({_size(st.get('free_bytes'))} free "
                          "pages, handed back gradually)")]
    lines = [f"{k:<10} {v}" for k, v in rows]
    by_priority = st.get("by_priority") or {}
    if by_priority:
        lines.append("by priority")
        for prio, n in by_priority.items():
            what = PRIORITY_WORDS.get(int(prio), "")
            lines.append(f"  {prio:>2}  {n:>10,}  {what}")
    dropped = st.get("dropped") or {}
    if dropped:
        lines.append("dropped (by the outbox's policy, counted since the file was made)")
        lines += [f"  {reason:<16} {n:>10,}" for reason, n in sorted(dropped.items())]
    else:
        lines.append("dropped    none")
    return "\n".join(lines)


def cmd_outbox_export(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        if args.output == "-":
            n = reader.export_jsonl(sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8") as fh:
                n = reader.export_jsonl(fh)
    finally:
        reader.close()
    print(f"exported {n} events", file=sys.stderr)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Every problem at once (one line each, exit 2), and a warning for each O2O_EDGE_
    variable that sets nothing."""
    import os

    from agent.config_load import config_problems, unknown_env
    from agent.contracts.settings_file import find_config_file

    problems = config_problems(args.config)
    warnings = unknown_env(os.environ)
    found = find_config_file(args.config, os.environ)
    source = str(found) if found is not None else "built-in defaults"
    if args.json:
        print(json.dumps({"ok": not problems, "source": source, "problems": problems,
                          "warnings": warnings}, indent=2))
        return 2 if problems else 0
    for warning in warnings:
        print(f"o2o-edge config check: warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(f"o2o-edge config check: {problem}", file=sys.stderr)
    if len(problems) > 1:
        print(f"o2o-edge config check: {len(problems)} problems; fix them and check again",
              file=sys.stderr)
    if problems:
        return 2
    print(f"configuration OK ({source})"
          + (f", {len(warnings)} warning{'s' if len(warnings) > 1 else ''}" if warnings else ""))
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    print(render_toml(load_config(args.config)), end="")
    return 0
