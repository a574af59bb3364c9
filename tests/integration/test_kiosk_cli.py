"""`o2o-edge kiosk pin` makes a hash the kiosk accepts; a bad PIN is refused with exit 2."""

from __future__ import annotations

import re
import subprocess

from kiosk.pin import verify_pin
from tests.conftest import CLI, ROOT


def test_kiosk_pin_hash_line() -> None:
    res = subprocess.run([*CLI, "kiosk", "pin", "--pin", "246810"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    m = re.fullmatch(r'\[kiosk\]\nstaff_pin_hash = "(scrypt\$[^"]+)"\n', res.stdout)
    assert m and verify_pin("246810", m.group(1)) and not verify_pin("246811", m.group(1))
    res = subprocess.run([*CLI, "kiosk", "pin", "--pin", "12ab"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and "4 to 12 digits" in res.stderr and "Traceback" not in res.stderr
