"""`o2o-edge doctor`: what is wrong on this store Pi, in plain words, with the fix for each.
Exit 1 when any check failed (warnings alone exit 0), 2 when the configuration is invalid."""

from __future__ import annotations

import argparse
import json
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
    from agent.doctor.hardware import check_bluetooth, check_camera, check_nfc, check_zbar
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
    for check in (check_store_name, check_dirs, check_broker, check_disk, check_outbox,
                  check_store_db, check_agent, check_bluetooth, check_nfc, check_camera,
                  check_zbar):
        findings += check(cfg)
    findings += check_clock()
    return _report(findings, args.json)


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
        print("all good" if not failed else "something needs fixing (FAIL above)")
    return 2 if invalid else 1 if failed else 0
