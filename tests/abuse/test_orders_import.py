"""`o2o-edge orders import` with hostile and careless files: each refused whole with its
problem named, nothing of the store's list changed, memory bounded (peak RSS of the importing
process measured), and no file content that makes the importer raise anything else."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.checkin.db import StoreDb
from agent.checkin.importer import MAX_FILE_BYTES, MAX_ROWS, ImportProblem, parse_file
from tests.abuse.conftest import ABUSE
from tests.conftest import ROOT

# the CLI in a child that reports its own peak RSS on stderr: VmHWM, the high-water mark of
# its own memory since exec (ru_maxrss would carry the forking test process' size over exec)
MEASURED = ("import re, sys\nfrom agent.cli.main import main\nrc = main(sys.argv[1:])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print('maxrss_kib', hwm, file=sys.stderr)\nsys.exit(rc)\n")
GOOD = "order_id,code,first_name,status\nA-1,ABCD1,Anna,ready\nA-2,ABCD2,Ben,preparing\n"


def run_import(path: Path, env_home: Path) -> tuple[int, str, float]:
    """(exit status, stderr without the measurement, peak RSS in MiB) of one import."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_EDGE_")}
    env["XDG_STATE_HOME"] = str(env_home)
    res = subprocess.run([sys.executable, "-c", MEASURED, "orders", "import", str(path)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    lines = res.stderr.strip().splitlines()
    rss = float(lines[-1].split()[1]) / 1024
    return res.returncode, "\n".join(lines[:-1]), rss


def seed(tmp_path: Path, home: Path) -> None:
    """The store's list before each case: two orders (imported in this process, faster)."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    db = StoreDb(home / "o2o-edge" / "store.db")
    try:
        db.replace("orders", parse_file(good)["orders"])
    finally:
        db.close()


def rows_in_store(home: Path) -> list[tuple[str, str | None]]:
    db = home / "o2o-edge" / "store.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        return c.execute("SELECT order_id, code FROM orders ORDER BY order_id").fetchall()


def csv_of(n: int, start: int = 0) -> str:
    return "order_id,code,first_name,status,eta_min,store\n" + "".join(
        f"ORD-{i:09d},C{i:08d},Anna,ready,5,store-1\n" for i in range(start, start + n))


CASES = {
    "huge-field.csv": ("order_id,code,first_name\nA-9,ABCD9," + "x" * 200_000 + "\n",
                       "line 2"),
    "long-name.csv": ("order_id,code,first_name\nA-9,ABCD9," + "x" * 300 + "\n",
                      "at most 256"),
    "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep-small.json": ("[" * 3000 + "]" * 3000, "nested too deeply"),
    "e400.json": ('[{"card": "abcd", "points": 1e400}]', "1e400"),
    "nan.json": ('[{"card": "abcd", "points": NaN}]', "NaN"),
    "points-23-digits.json": ('[{"card": "abcd", "points": 12345678901234567890123}]',
                              "points must be a whole number"),
    "points-fraction.json": ('[{"card": "abcd", "points": 1.5}]', "points must be"),
    "duplicate-codes.csv": ("order_id,code,first_name\nA-1,ABCD,Ann\nA-2,ABCD,Ben\n",
                            "line 3: code 'ABCD' appears twice (first at line 2)"),
    "no-code-no-name.json": ('[{"order_id": "A-7"}]', "needs a code or a first_name"),
    "object-name.json": ('[{"order_id": "A-7", "code": "ABCD7", "first_name": {"x": 1}}]',
                         "must be text or a number"),
    "many-keys.json": (json.dumps([{f"k{i}": i for i in range(40)}]), "keys"),
    "year-99999.json": ('[{"appt_id": "P-1", "code": "APPT1", "at": 3e12}]', "2000-2099"),
    "latin1.csv": ("order_id,code,first_name\nA-1,ABCD,Ann\nA-2,ABCE,Jos\xe9\n".encode(
        "latin-1"), "line 3: not UTF-8"),
    "empty.csv": ("", "empty"),
    "garbage.csv": (bytes(range(256)) * 16, "UTF-8"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_refused_whole_and_named(name: str, tmp_path: Path) -> None:
    home = tmp_path / "state"
    seed(tmp_path, home)
    before = rows_in_store(home)
    content, says = CASES[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, err, _ = run_import(path, home)
    assert rc == 1 and "Traceback" not in err and "this is a bug" not in err, err
    assert says in err, err
    assert rows_in_store(home) == before  # nothing lost, nothing half-imported


def test_a_code_another_order_has_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "state"
    seed(tmp_path, home)
    clash = tmp_path / "day.json"
    clash.write_text(json.dumps({
        "orders": [{"order_id": "A-3", "code": "NEW33", "first_name": "Cem"}],
        "appointments": [{"appt_id": "P-1", "code": "APP11", "first_name": "Eva",
                          "at": "2026-12-01T10:30:00+01:00"}],
        "loyalty": [{"card": "04a1b2", "points": 5}]}))
    taken = tmp_path / "taken.csv"
    taken.write_text("order_id,code,first_name\nA-9,ABCD1,Zoe\n")
    rc, err, _ = run_import(taken, home)
    assert rc == 1 and "'ABCD1' of 'A-9' is 'A-1''s" in err and "Traceback" not in err
    assert rows_in_store(home) == [("A-1", "ABCD1"), ("A-2", "ABCD2")]
    assert run_import(clash, home)[0] == 0


def test_memory_is_bounded_for_big_files(tmp_path: Path) -> None:
    """A 117 MB CSV took 4.3 GB before (3.05 GiB parse-only for 100 MB, measured here); now a
    file over the cap is refused unread, one at the cap stops at the row limit, and the
    largest accepted import stays near 120 MiB."""
    home = tmp_path / "state"
    big = tmp_path / "big.csv"
    with big.open("w") as fh:  # a real 100 MB export, not a sparse file
        fh.write(csv_of(0))
        line = "ORD-000000000,C00000000,Anna,ready,5,store-1\n" * 10_000
        while fh.tell() < 100_000_000:
            fh.write(line)
    rc, err, rss = run_import(big, home)
    print(f"\n100 MB CSV: refused, peak RSS {rss:.0f} MiB")
    assert rc == 1 and f"{MAX_FILE_BYTES:,}" in err and rss < 80
    big.unlink()
    at_cap = tmp_path / "cap.csv"
    at_cap.write_text(csv_of(MAX_ROWS + 50))
    rc, err, rss = run_import(at_cap, home)
    print(f"{MAX_ROWS + 50:,} rows ({at_cap.stat().st_size:,} bytes): refused, peak RSS "
          f"{rss:.0f} MiB")
    assert rc == 1 and "split it" in err and rss < 250
    accepted = tmp_path / "max.csv"
    accepted.write_text(csv_of(MAX_ROWS))
    rc, err, rss = run_import(accepted, home)
    print(f"{MAX_ROWS:,} rows accepted: peak RSS {rss:.0f} MiB")
    assert rc == 0 and rss < 250, err
    empties = tmp_path / "empties.json"
    empties.write_text("[" + ",".join(["{}"] * 2_000_000) + "]")
    rc, err, rss = run_import(empties, home)
    print(f"2,000,000 empty JSON objects: refused, peak RSS {rss:.0f} MiB")
    assert rc == 1 and "more than" in err and rss < 100


_cell = st.one_of(st.text(max_size=20), st.integers().map(str),
                  st.sampled_from(["1e400", "nan", "-1", "9" * 30, "ready", "ABCD12",
                                   "2026-12-01T10:30:00+01:00", "\x00", "[/]"]))
_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["order_id", "appt_id", "card", "code", "first_name", "points",
                         "eta_min", "at", "status", "x"]), inner, max_size=5),
    max_leaves=12)


@ABUSE
@given(header=st.sampled_from(["order_id,code,first_name,status,eta_min",
                               "appt_id,code,first_name,at", "card,first_name,points",
                               "name,points", ""]),
       rows=st.lists(st.lists(_cell, max_size=6), max_size=6))
def test_any_csv_is_imported_or_refused_by_name(header: str, rows: list[list[str]],
                                                tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as fh:
        fh.write(header + "\n")
        csv.writer(fh).writerows(rows)
    with contextlib.suppress(ImportProblem):
        parse_file(path)


@ABUSE
@given(doc=_json_value)
def test_any_json_is_imported_or_refused_by_name(doc: object, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    try:
        groups = parse_file(path)
    except ImportProblem:
        return
    for rows in groups.values():  # what is accepted fits the store database
        for row in rows:
            assert all(not isinstance(v, int) or abs(v) < 2**63 for v in row.values())
