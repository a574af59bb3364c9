#!/usr/bin/env python3
"""Set up and run o2o-edge from a fresh checkout with nothing but python3.

    python3 dev.py demo [ARGS...]   venv + install, then a simulated store (o2o-edge demo)
    python3 dev.py test [ARGS...]   venv + install (+ Debian packages when root), lint, type
                                    check, import contracts and the test suite (ARGS go to
                                    pytest)
    python3 dev.py bench [ARGS...]  agent core benchmarks with their baselines
    python3 dev.py bench-ble [ARGS...]  BLE decode benchmark against ibeacon-ble
    python3 dev.py bench-qr [ARGS...]   QR decoding against pyzbar, zxing-cpp and OpenCV
    python3 dev.py bench-nfc [ARGS...]  NFC tag on the reader -> event committed, vs bare nfcpy
    python3 dev.py bench-kiosk [ARGS...]  tap/scan -> kiosk screen painted; kiosk RSS
    python3 dev.py bench-memory [ARGS...]  agent RSS with every touchpoint on, vs the old
                                           imports, and where each MiB goes
    python3 dev.py bench-startup [ARGS...]  run -> READY=1 / first event upstream /
                                            touchpoints live, vs core and bare python

Both are idempotent: a second run reinstalls nothing unless pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
}
# the demo's simulated store: a private broker (unless one answers on localhost) and the
# private D-Bus its fake BlueZ lives on
DEBIAN_DEMO_PACKAGES = {
    "mosquitto": "/usr/sbin/mosquitto",
    "dbus": "/usr/bin/dbus-daemon",
}


def run(cmd: list[str], **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]  # noqa: S603


def have_deb(pkg: str, path: str | None) -> bool:
    if path and Path(path).exists():
        return True
    res = subprocess.run(  # noqa: S603
        ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True  # noqa: S607
    )
    return "install ok installed" in res.stdout


def ensure_debian_packages(packages: dict[str, str | None]) -> None:
    if not shutil.which("dpkg-query"):
        print("not a Debian system: install", ", ".join(packages), "yourself")
        return
    missing = [p for p, path in packages.items() if not have_deb(p, path)]
    if not missing:
        return
    if os.geteuid() != 0:
        print(f"missing Debian packages {missing}: run 'sudo apt-get install {' '.join(missing)}'"
              " (what needs them is skipped, saying why)")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        try:
            run([sys.executable, "-m", "venv", str(VENV)])
        except subprocess.CalledProcessError:
            # Debian splits venv out of the interpreter package
            if os.geteuid() == 0 and shutil.which("apt-get"):
                ver = f"{sys.version_info.major}.{sys.version_info.minor}"
                run(["apt-get", "update", "-q"])
                run(["apt-get", "install", "-y", "-q", f"python{ver}-venv"])
                shutil.rmtree(VENV, ignore_errors=True)
                run([sys.executable, "-m", "venv", str(VENV)])
            else:
                sys.exit("python3 cannot make a virtual environment: apt-get install python3-venv")
    def digest_for(extra: str) -> str:
        return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()

    digest = digest_for(extras)
    stamp = VENV / ".o2o-edge-installed"
    # an install with the test extras also serves the demo
    supersets = {"": {"[test]", "[test,bench]"}, "[test]": {"[test,bench]"}}.get(extras, set())
    good = {digest} | {digest_for(e) for e in supersets}
    if stamp.exists() and stamp.read_text() in good:
        return
    run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}{extras}"])
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench", "bench-ble", "bench-qr",
                                       "bench-nfc", "bench-kiosk", "bench-wear",
                                       "bench-memory", "bench-startup"):
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
        module = {"bench": "tests.bench.bench_core", "bench-ble": "tests.bench.bench_ble",
                  "bench-qr": "tests.bench.bench_qr", "bench-nfc": "tests.bench.bench_nfc",
                  "bench-kiosk": "tests.bench.bench_kiosk",
                  "bench-wear": "tests.bench.bench_wear",
                  "bench-memory": "tests.bench.bench_memory",
                  "bench-startup": "tests.bench.bench_startup"}[what]
        return subprocess.run([str(PY), "-m", module, *rest]).returncode  # noqa: S603
    ensure_venv("[test]")
    run([str(PY), "-m", "ruff", "check", "."])
    run([str(PY), "-m", "mypy"])
    # the dependency rule: pyproject.toml's [tool.importlinter] contracts
    run([str(VENV / "bin" / "lint-imports"), "--no-cache"])
    # two workers, each taking whole test files (their fixtures and brokers stay together):
    # most tests wait on brokers, radios and timers, so two halve the time even on 2 CPUs
    workers = ["-n", "2", "--dist", "loadfile"] if "-n" not in rest else []
    return subprocess.run([str(PY), "-m", "pytest", *workers, *rest]).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
