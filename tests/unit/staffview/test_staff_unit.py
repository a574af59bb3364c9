"""The staff view's systemd unit: it verifies, scores "OK" on systemd's hardening scale, and
is not enabled by the install script (off by default)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT, need

UNIT = ROOT / "systemd" / "o2o-edge-staff.service"


def test_the_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    # verify checks that the program exists: a stand-in for /opt/o2o-edge's
    prog = tmp_path / "o2o-edge"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/o2o-edge/venv/bin/o2o-edge", str(prog)))
    res = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    res = subprocess.run([analyze, "security", "--offline=yes", str(copy)],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", res.stdout)
    assert found, res.stdout[-500:] + res.stderr
    assert float(found.group(1)) <= 2.0


def test_the_install_script_does_not_enable_it() -> None:
    script = (ROOT / "systemd" / "install.sh").read_text()
    assert not re.search(r"enable[^\n]*o2o-edge-staff", script)
