"""`o2o-edge doctor`: what is wrong on this store Pi, in plain words, with the fix for each.
Exit 1 when any check failed (warnings alone exit 0), 2 when the configuration is invalid."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}


def add_parser(sub: Any) -> None:
    from agent.cli import doctor as me

    p = sub.add_parser("doctor", help="check this machine, the readers, the broker and the "
                                      "buffer; say what to fix")
    p.add_argument("--config", help="configuration file (default: the usual search)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=me.cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.doctor import Finding, fail, ok
    from agent.doctor.catalog import check_catalog
    from agent.doctor.cert import check_certificate
    from agent.doctor.hardware import check_bluetooth, check_camera, check_nfc, check_zbar
    from agent.doctor.program import check_program
    from agent.doctor.system import (
        check_agent,
        check_broker,
        check_clock,
        check_dirs,
        check_disk,
        check_outbox,
        check_store_db,
        check_store_name,
    )
    from agent.errors import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _report([fail("config", str(exc), "fix the file; 'o2o-edge config check' says "
                             "the same")], args.json, invalid=True)
    findings: list[Finding] = [ok("config", f"configuration from {cfg.source} is valid")]
    with _quiet_stderr():  # OpenCV, libusb and BlueZ print their own warnings: the findings say it
        for check in (check_store_name, check_certificate, check_dirs, check_broker,
                      check_disk, check_outbox,
                      check_store_db, check_catalog, check_agent, check_program,
                      check_bluetooth, check_nfc,
                      check_camera, check_zbar):
            findings += check(cfg)
        findings += check_clock()
    return _report(findings, args.json)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Libraries the checks use write to file descriptor 2 themselves ("[ WARN:0@0.02] global
    cap_v4l.cpp:914 open VIDEOIO(V4L2:/dev/video0): can't open camera by index"), above the
    table and in words nobody at the store needs: what they say is in the findings. Their
    output goes nowhere while the checks run."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _report(findings: list[Any], as_json: bool, invalid: bool = False) -> int:
    failed = any(f.level == "fail" for f in findings)
    if as_json:
        print(json.dumps({"ok": not failed, "findings": [f.as_json() for f in findings]},
                         indent=2))
    else:
        for f in findings:
            print(f"{MARK[f.level]}  {f.check:<18} {f.message}")
            if f.fix and f.level in ("warn", "fail"):
                print(f"      {'':<18} fix: {f.fix}")
        fails = sum(f.level == "fail" for f in findings)
        warns = sum(f.level == "warn" for f in findings)
        if fails:
            also = f" and {_plural(warns, 'warning')}" if warns else ""
            print(f"{_plural(fails, 'failure')}{also}: fix the FAIL lines above first")
        elif warns:
            print(f"{_plural(warns, 'warning')}, nothing failed: see the WARN lines above")
        else:
            print("all good")
    return 2 if invalid else 1 if failed else 0
