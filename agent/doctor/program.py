"""Doctor's look at the installed program (systemd/install.sh): the version the units run
(/opt/o2o-edge/venv, a symlink to venvs/VERSION), the one kept for `install.sh rollback`, and
whether the agent that answers runs the version installed (an `install` over a running agent
switches the symlink without restarting it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent import __version__
from agent.bus.client import BusClient
from agent.config import Config
from agent.doctor import Finding, ok, skip, warn
from agent.errors import AgentError


def _running_version(cfg: Config) -> str | None:
    try:
        with BusClient(cfg.bus.socket, timeout=5) as bus:
            return str(bus.status()["agent"]["version"])
    except (AgentError, OSError, KeyError):
        return None  # not running: check_agent says so


def check_program(cfg: Config, prefix: Path | None = None,
                  running: str | None = None) -> list[Finding]:
    """`prefix`: the installation (default: the one this program runs from, when it is one);
    `running`: the agent's version (default: asked over the bus)."""
    if prefix is None:
        here = Path(sys.prefix)
        if here.parent.name != "venvs":
            return [skip("program", f"o2o-edge {__version__} from {here}: not an installed "
                                    "version (systemd/install.sh installs one)")]
        prefix = here.parent.parent
    link = prefix / "venv"
    if not link.is_symlink():
        return [skip("program", f"{link} is no symlink to a version: 'install.sh upgrade' "
                                "makes the layout")]
    in_use = Path(os.readlink(link)).name
    before = prefix / "venv.previous"
    kept = Path(os.readlink(before)).name if before.is_symlink() else ""
    if kept and not (prefix / "venvs" / kept / "bin" / "o2o-edge").exists():
        kept = ""
    back = (f"; {kept} kept for 'install.sh rollback'" if kept else
            "; no version kept to go back to")
    running = running if running is not None else _running_version(cfg)
    if running is not None and running != in_use:
        return [warn("program", f"the agent runs {running}, but {link} is {in_use}{back}",
                     "sudo systemctl restart o2o-edge (or 'install.sh upgrade', which restarts "
                     "and goes back by itself when the new version is not healthy)")]
    return [ok("program", f"o2o-edge {in_use} in {prefix / 'venvs' / in_use}{back}")]
