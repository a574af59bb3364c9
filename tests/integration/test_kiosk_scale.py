"""`[kiosk] scale`: the served page carries it to the script that sizes the text from the
screen; a value outside 0.5-2 is refused in one line when the kiosk starts."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import CLI, ROOT, wait_for, write_config


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_served_page_carries_the_scale(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", url="", extra="[kiosk]\nscale = 1.5\n")
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "kiosk", "--serve",
                             f"127.0.0.1:{port}", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page: list[str] = []

    def served() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                page.append(r.read().decode())
        except OSError:
            return False
        return True

    try:
        wait_for(served, timeout=30, what="the kiosk page")
    finally:
        proc.terminate()
        proc.wait(10)
    assert 'data-scale="1.5"' in page[0]
    assert "fontSizeFor(window.innerWidth, window.innerHeight)" in page[0]


def test_a_scale_out_of_range_is_refused_in_one_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", url="", extra="[kiosk]\nscale = 5\n")
    res = subprocess.run([*CLI, "kiosk", "--serve", "127.0.0.1:0", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode != 0
    assert "[kiosk] scale" in res.stderr and "0.5 to 2" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
