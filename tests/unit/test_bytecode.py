"""`python -m agent.bytecode --list`: what install.sh compiles is what the program imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_list_has_the_program_and_its_stacks_and_not_what_never_runs() -> None:
    res = subprocess.run([sys.executable, "-m", "agent.bytecode", "--list"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    listed = set(res.stdout.split())
    # the agent, the kiosk and the stacks loaded on demand (camera, images, radios)
    assert {"agent/daemon.py", "kiosk/app.py", "drivers/retry.py", "cv2/__init__.py",
            "PIL/Image.py", "bleak/__init__.py", "nfc/__init__.py"} <= listed
    assert not any("/tests/" in f or f.startswith(("pip/", "simulators/")) for f in listed)
    # nothing was refused that this machine has
    assert "not imported" not in res.stderr, res.stderr
