#!/usr/bin/env python3
"""Set up and run o2o-edge from a fresh checkout with nothing but python3.

    python3 dev.py demo [ARGS...]   venv + install, then a simulated store (o2o-edge demo)
    python3 dev.py test [ARGS...]   venv + install (+ Debian packages when root), lint, type
                                    check, import contracts and the test suite (ARGS go to
                                    pytest); without ARGS also the unit suite under every
                                    other Python 3.11-3.13 found, each in its own .venv-3.N
    python3 dev.py bench [ARGS...]  agent core benchmarks with their baselines
    python3 dev.py bench-ble [ARGS...]  BLE decode benchmark against ibeacon-ble
    python3 dev.py bench-qr [ARGS...]   QR decoding against pyzbar, zxing-cpp and OpenCV
    python3 dev.py bench-nfc [ARGS...]  NFC tag on the reader -> event committed, vs bare nfcpy
    python3 dev.py bench-kiosk [ARGS...]  tap/scan -> kiosk screen painted; kiosk RSS
    python3 dev.py bench-install [ARGS...]  runtime venv size for aarch64 from PyPI's wheels
    python3 dev.py bench-memory [ARGS...]  agent RSS with every touchpoint on, vs the old
                                           imports, and where each MiB goes
    python3 dev.py bench-startup [ARGS...]  run -> READY=1 / first event upstream /
                                            touchpoints live, vs core and bare python
    python3 dev.py bench-fleet [ARGS...]  collectors' ingest into PostgreSQL vs raw psycopg,
                                          1,000 stores' reconnect storm, losses per fault

Both are idempotent: a second run reinstalls nothing unless pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("O2O_EDGE_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"
# what the tests talk to: real brokers, a real D-Bus daemon, the QR decoder's library,
# libusb for nfcpy's USB reader path (its "no reader" answers), Chromium for the served kiosk
DEBIAN_TEST_PACKAGES = {
    "mosquitto": "/usr/sbin/mosquitto",
    "nats-server": "/usr/sbin/nats-server",
    "dbus": "/usr/bin/dbus-daemon",
    "libzbar0": None,
    "libusb-1.0-0": None,
    "chromium": "/usr/bin/chromium",  # the served kiosk's test, as on the store's screen
    "cage": "/usr/bin/cage",  # the kiosk browser unit names it: systemd-analyze verify checks
    "systemd": "/usr/bin/systemd-analyze",
    "prometheus": "/usr/bin/promtool",  # checks the metrics page's names and format
    "tzdata": "/usr/share/zoneinfo/Europe/Berlin",  # store time zones: KPI days across DST
}
# the demo's simulated store: a private broker (unless one answers on localhost) and the
# private D-Bus its fake BlueZ lives on
DEBIAN_DEMO_PACKAGES: dict[str, str | None] = {
    "mosquitto": "/usr/sbin/mosquitto",
    "dbus": "/usr/bin/dbus-daemon",
}


def run(cmd: list[str], **kw: object) -> None:
    # the command line goes where its output goes (a log file for the other Pythons' venvs)
    print("+", " ".join(str(c) for c in cmd), file=kw.get("stdout") or sys.stdout, flush=True)  # type: ignore[arg-type]
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]  # noqa: S603


def have_deb(pkg: str, path: str | None) -> bool:
    if path and Path(path).exists():
        return True
    query = ["dpkg-query", "-W", "-f=${Status}", pkg]
    res = subprocess.run(query, capture_output=True, text=True)  # noqa: S603
    return "install ok installed" in res.stdout


def ensure_debian_packages(packages: dict[str, str | None]) -> None:
    if not shutil.which("dpkg-query"):
        print("not a Debian system: install", ", ".join(packages), "yourself")
        return
    missing = [p for p, path in packages.items() if not have_deb(p, path)]
    if not missing:
        return
    if os.geteuid() != 0:
        print(
            f"missing Debian packages {missing}: run 'sudo apt-get install {' '.join(missing)}'"
            " (what needs them is skipped, saying why)"
        )
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def ensure_venv(
    extras: str, venv: Path = VENV, python: str = sys.executable, log: Path | None = None
) -> None:
    """`log`: where pip's output goes (also its warnings), instead of the terminal: the other
    Pythons' venvs are made while the main suite prints its progress."""
    if log is None:
        _ensure_venv(extras, venv, python, {})
        return
    with log.open("a") as fh:
        _ensure_venv(extras, venv, python, {"stdout": fh, "stderr": subprocess.STDOUT})


def _ensure_venv(extras: str, venv: Path, python: str, out: dict[str, object]) -> None:
    py = venv / "bin" / "python"
    if not py.exists():
        try:
            run([python, "-m", "venv", str(venv)], **out)
        except subprocess.CalledProcessError:
            # Debian splits venv out of the interpreter package
            if os.geteuid() == 0 and shutil.which("apt-get") and python == sys.executable:
                ver = f"{sys.version_info.major}.{sys.version_info.minor}"
                run(["apt-get", "update", "-q"])
                run(["apt-get", "install", "-y", "-q", f"python{ver}-venv"])
                shutil.rmtree(venv, ignore_errors=True)
                run([python, "-m", "venv", str(venv)])
            else:
                sys.exit(
                    f"{python} cannot make a virtual environment: apt-get install python3-venv"
                )

    def digest_for(extra: str) -> str:
        return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()

    digest = digest_for(extras)
    stamp = venv / ".o2o-edge-installed"
    # an install with the test extras also serves the demo and the unit suite
    supersets = {
        "": {"[test]", "[test,bench]"},
        "[unit]": {"[test]", "[test,bench]"},
        "[test]": {"[test,bench]"},
    }.get(extras, set())
    good = {digest} | {digest_for(e) for e in supersets}
    if stamp.exists() and stamp.read_text() in good:
        return
    run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], **out)
    run([str(py), "-m", "pip", "install", "-q", "-e", f"{ROOT}{extras}"], **out)
    stamp.write_text(digest)


SUPPORTED = ((3, 11), (3, 12), (3, 13))  # requires-python >= 3.11; CI runs each one found


def other_pythons() -> tuple[dict[str, str], dict[str, str]]:
    """The supported Pythons other than the one running this, by "3.N": {version: path} of
    those found (on PATH as python3.N, or the newest 3.N.x under pyenv's versions) and
    {version: why not} for the others."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for major, minor in SUPPORTED:
        ver = f"{major}.{minor}"
        if ver == here:
            continue
        candidates = [shutil.which(f"python{ver}") or ""]
        if pyenv.is_dir():
            builds = [d for d in pyenv.iterdir() if re.fullmatch(rf"{major}\.{minor}\.\d+", d.name)]
            builds.sort(key=lambda d: int(d.name.rsplit(".", 1)[1]), reverse=True)
            candidates += [str(d / "bin" / f"python{ver}") for d in builds]
        why = f"no python{ver} on PATH or under {pyenv}"
        for cand in filter(None, candidates):
            # a Debian interpreter without its -venv package cannot make the venv
            probe = "import ensurepip, sqlite3, sys; print('%d.%d' % sys.version_info[:2])"
            res = subprocess.run([cand, "-c", probe], capture_output=True, text=True)  # noqa: S603
            if res.returncode == 0 and res.stdout.strip() == ver:
                found[ver] = cand
                break
            why = (
                f"{cand} cannot make a virtual environment (apt-get install python{ver}-venv)"
                if "ensurepip" in res.stderr
                else f"{cand} does not run: {res.stderr.strip()[-200:]}"
            )
        else:
            missing[ver] = why
    return found, missing


def unit_suites(pythons: dict[str, str]) -> tuple[threading.Thread, dict[str, tuple[int, str]]]:
    """The unit suite under each of `pythons`, one after the other in a thread (started once the
    main suite is over), each in its own venv next to .venv, made and kept up to date like it.
    Results: {version: (exit code, log path)}."""
    results: dict[str, tuple[int, str]] = {}

    def work() -> None:
        for ver, python in pythons.items():
            venv = VENV.with_name(f"{VENV.name}-{ver}")
            log = venv.with_name(f"{venv.name}.unit.log")
            log.write_text("")
            try:
                ensure_venv("[unit]", venv, python, log=log)
            except (subprocess.CalledProcessError, SystemExit) as exc:
                results[ver] = (1, f"its venv {venv} could not be made ({exc}; see {log})")
                continue
            with log.open("a") as fh:
                # at a lower priority: whatever else runs on the machine keeps its timings
                pytest = ["nice", "-n", "10", str(venv / "bin" / "python"), "-m", "pytest", "-q"]
                args = ["-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile", "tests/unit"]
                rc = subprocess.run(pytest + args, stdout=fh, stderr=subprocess.STDOUT).returncode  # noqa: S603
            results[ver] = (rc, str(log))

    thread = threading.Thread(target=work, name="other-pythons", daemon=True)
    thread.start()
    return thread, results


def last_line(log: str) -> str:
    try:
        lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return log
    return lines[-1] if lines else "(no output)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (
        "demo",
        "test",
        "bench",
        "bench-ble",
        "bench-qr",
        "bench-nfc",
        "bench-kiosk",
        "bench-wear",
        "bench-memory",
        "bench-startup",
        "bench-install",
        "bench-fleet",
    ):
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if what == "demo":
        ensure_debian_packages(DEBIAN_DEMO_PACKAGES)
        ensure_venv("")
        os.execv(str(VENV / "bin" / "o2o-edge"), ["o2o-edge", "demo", *rest])  # noqa: S606
    ensure_debian_packages(DEBIAN_TEST_PACKAGES)
    if what.startswith("bench"):
        ensure_venv("[test,bench]")
        module = {
            "bench": "tests.bench.bench_core",
            "bench-ble": "tests.bench.bench_ble",
            "bench-qr": "tests.bench.bench_qr",
            "bench-nfc": "tests.bench.bench_nfc",
            "bench-kiosk": "tests.bench.bench_kiosk",
            "bench-wear": "tests.bench.bench_wear",
            "bench-install": "tests.bench.bench_install",
            "bench-memory": "tests.bench.bench_memory",
            "bench-startup": "tests.bench.bench_startup",
            "bench-fleet": "tests.bench.bench_fleet",
        }[what]
        return subprocess.run([str(PY), "-m", module, *rest]).returncode  # noqa: S603
    ensure_venv("[test]")
    found: dict[str, str] = {}
    if not rest:  # a plain run (CI's): the unit suite under the other supported Pythons too
        found, missing = other_pythons()
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        print(
            f"Python {here}: the whole suite; "
            + "; ".join(
                [f"{v}: the unit suite ({p})" for v, p in found.items()]
                + [f"{v}: skipped, {why}" for v, why in missing.items()]
            ),
            flush=True,
        )
    run([str(PY), "-m", "ruff", "check", "."])
    run([str(PY), "-m", "mypy"])
    # the dependency rule: pyproject.toml's [tool.importlinter] contracts
    run([str(VENV / "bin" / "lint-imports"), "--no-cache"])
    # two workers, each taking whole test files (their fixtures and brokers stay together):
    # most tests wait on brokers, radios and timers, so two halve the time even on 2 CPUs
    workers = ["-n", "2", "--dist", "loadfile"] if "-n" not in rest else []
    rc = subprocess.run([str(PY), "-m", "pytest", *workers, *rest]).returncode  # noqa: S603
    if rest or not found:
        return rc
    # after the main suite, not beside it: its broker-crash and store-day tests keep to their
    # timings on 2 CPUs only when nothing else competes (beside it, both failed under the load)
    thread, results = unit_suites(found)
    thread.join()
    for ver, (code, log) in results.items():
        print(
            f"Python {ver}, unit suite: {last_line(log)}"
            + ("" if code == 0 else f" (exit {code}; the whole output: {log})"),
            flush=True,
        )
        if code != 0 and Path(log).is_file():
            print(Path(log).read_text(errors="replace")[-6000:], flush=True)
    failed = any(code != 0 for code, _ in results.values())
    return rc or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
