"""The agent's unit does not restart a configuration the agent refuses: `o2o-edge run` exits with
the status the unit names in RestartPreventExitStatus (a restart every 2 s cannot mend a file),
and a failure that can pass (exit 1) is still restarted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

O2O = str(Path(sys.executable).with_name("o2o-edge"))


def _unit_values(key: str) -> list[str]:
    text = (ROOT / "systemd" / "o2o-edge.service").read_text()
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.startswith(f"{key}=")]


@pytest.mark.parametrize("config", [
    '[device]\nstore = "CHANGE-ME"\nid = "pi-1"\n',
    '[device]\nstore = "s1"\nid = "all"\n',
    '[device]\nstore = "s1"\nid = "pi-1"\n[mqtt]\nport = 1883\n',
], ids=["placeholder-store", "reserved-device", "unknown-key"])
def test_a_refused_configuration_is_not_restarted(tmp_path: Path, config: str) -> None:
    assert _unit_values("Restart") == ["always"]
    prevent = _unit_values("RestartPreventExitStatus")
    assert prevent, "the unit names no exit status it does not restart"
    cfg = tmp_path / "config.toml"
    cfg.write_text(config)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "run").mkdir(mode=0o700)
    res = subprocess.run([O2O, "run", "--config", str(cfg)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert str(res.returncode) in prevent[0].split(), (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    # a failure that may pass (the agent's own error, exit 1) stays restarted
    assert "1" not in prevent[0].split()
