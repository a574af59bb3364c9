"""Deployment files: every unit passes `systemd-analyze verify`, the install script stages a
whole installation under DESTDIR (program in a venv of its version, `o2o-edge` on PATH, units,
udev rules, module blacklist, D-Bus policy, users, a valid commented config), an install over
it keeps the config, uninstall keeps the data unless purged, and `systemd-analyze security`
scores the hardening. Upgrades with rollback: test_upgrade.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config
from tests.conftest import ROOT, need

UNITS = ["o2o-edge.service", "o2o-edge-kiosk-web.service", "o2o-edge-kiosk-browser.service",
         "o2o-edge-kiosk-tty.service", "o2o-edge-staff.service"]


def _install(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ROOT / "systemd" / "install.sh"), *args],
                          env={"DESTDIR": str(dest), "PATH": "/usr/local/bin:/usr/bin:/bin",
                               "PYTHON": shutil.which("python3") or "python3"},
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("root")
    res = _install(dest, "--kiosk", "tty")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "staged under" in res.stdout
    return dest


def test_every_unit_verifies(staged: Path, tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    need("cage", "cage")
    need("chromium", "chromium")
    prog = staged / "opt/o2o-edge/venv/bin/o2o-edge"
    for unit in UNITS:
        # the staged program stands in for /opt/o2o-edge: verify checks executables exist
        text = (ROOT / "systemd" / unit).read_text().replace(
            "/opt/o2o-edge/venv/bin/o2o-edge", str(prog))
        (tmp_path / unit).write_text(text)
    res = subprocess.run([analyze, "verify", *[str(tmp_path / u) for u in UNITS]],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_install_stages_everything_and_upgrades_keep_the_config(staged: Path) -> None:
    for path, mode in [("etc/systemd/system/o2o-edge.service", 0o644),
                       ("etc/systemd/system/o2o-edge-staff.service", 0o644),
                       ("etc/udev/rules.d/70-o2o-edge.rules", 0o644),
                       ("etc/modprobe.d/o2o-edge-nfc.conf", 0o644),
                       ("etc/dbus-1/system.d/o2o-edge.conf", 0o644),
                       ("etc/sysusers.d/o2o-edge.conf", 0o644),
                       ("etc/o2o-edge/config.toml", 0o640),
                       ("opt/o2o-edge/README.md", 0o644)]:
        st = (staged / path).stat()
        assert st.st_mode & 0o777 == mode, path
    assert (staged / "etc/o2o-edge").stat().st_mode & 0o777 == 0o750
    res = subprocess.run([str(staged / "opt/o2o-edge/venv/bin/o2o-edge"), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("o2o-edge ")
    # a venv per version; the units run the one /opt/o2o-edge/venv points at
    version = res.stdout.split()[1]
    assert os.readlink(staged / "opt/o2o-edge/venv") == f"venvs/{version}"
    # the units' venv: bytecode for what the program imports, none for what it never does
    # (numpy's test suites), and no pip (agent/bytecode.py; an upgrade brings pip back a while)
    (site,) = (staged / f"opt/o2o-edge/venvs/{version}").glob("lib/python3*/site-packages")
    assert list((site / "agent" / "__pycache__").glob("daemon.*.pyc"))
    assert list((site / "cv2" / "__pycache__").glob("__init__.*.pyc"))
    assert (site / "numpy").is_dir() and not list((site / "numpy").rglob("tests/__pycache__"))
    assert not (site / "pip").exists()
    # `o2o-edge` on PATH, through the symlink whichever version is in use
    assert os.readlink(staged / "usr/local/bin/o2o-edge") == "/opt/o2o-edge/venv/bin/o2o-edge"
    cfg = load_config(str(staged / "etc/o2o-edge/config.toml"), {})
    assert cfg.device.store == "CHANGE-ME" and str(cfg.outbox.path).startswith("/var/lib/")
    assert "blacklist pn533_usb" in (staged / "etc/modprobe.d/o2o-edge-nfc.conf").read_text()
    rules = (staged / "etc/udev/rules.d/70-o2o-edge.rules").read_text()
    assert 'ATTRS{idVendor}=="054c", ATTRS{idProduct}=="06c3", GROUP="o2o-nfc"' in rules
    assert re.search(r"^u o2o-edge ", (staged / "etc/sysusers.d/o2o-edge.conf").read_text(),
                     re.M)
    # an upgrade keeps the store's config and the buffered events
    (staged / "etc/o2o-edge/config.toml").write_text('[device]\nstore = "berlin-01"\n')
    (staged / "var/lib/o2o-edge").mkdir(parents=True, exist_ok=True)
    (staged / "var/lib/o2o-edge/outbox.db").write_bytes(b"buffered")
    res = _install(staged)
    assert res.returncode == 0 and "kept /etc/o2o-edge/config.toml" in res.stdout
    assert 'store = "berlin-01"' in (staged / "etc/o2o-edge/config.toml").read_text()
    assert (staged / "etc/o2o-edge/config.toml.example").exists()


def test_security_scores(staged: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    scores = {}
    for unit in UNITS:
        res = subprocess.run([analyze, "security", "--offline=yes", f"--root={staged}", unit],
                             capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", res.stdout + res.stderr)
        assert m, res.stdout + res.stderr
        scores[unit] = float(m.group(1))
    print("systemd-analyze security:", scores)
    # the services that run our code: "OK" and better (lower is better, 10 is no hardening)
    assert scores["o2o-edge.service"] <= 2.0
    assert scores["o2o-edge-kiosk-web.service"] <= 2.0
    assert scores["o2o-edge-kiosk-tty.service"] <= 2.0
    assert scores["o2o-edge-staff.service"] <= 2.0  # listens on the store LAN
    assert scores["o2o-edge-kiosk-browser.service"] <= 5.0  # a compositor and a browser


def test_uninstall_keeps_data_unless_purged(tmp_path: Path, staged: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(staged, copy, symlinks=True)
    res = _install(copy, "uninstall")
    assert res.returncode == 0 and "kept /etc/o2o-edge and /var/lib/o2o-edge" in res.stdout
    assert not (copy / "opt/o2o-edge").exists()
    assert not os.path.lexists(copy / "usr/local/bin/o2o-edge")
    assert not (copy / "etc/systemd/system/o2o-edge.service").exists()
    assert (copy / "etc/o2o-edge/config.toml").exists()
    assert (copy / "var/lib/o2o-edge/outbox.db").exists()
    res = _install(copy, "uninstall", "--purge")
    assert res.returncode == 0
    assert not (copy / "etc/o2o-edge").exists() and not (copy / "var/lib/o2o-edge").exists()
