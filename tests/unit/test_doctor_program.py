"""doctor's "program" line over an installation's layout (install.sh: venvs/VERSION, the venv
symlink the units run, venv.previous for rollback): the version in use, the one kept, and an
agent still running another version than the one installed."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config
from agent.doctor.program import check_program


def layout(tmp_path: Path, *versions: str) -> Path:
    for v in versions:
        (tmp_path / "venvs" / v / "bin").mkdir(parents=True)
        (tmp_path / "venvs" / v / "bin" / "o2o-edge").write_text("#!/bin/sh\n")
    return tmp_path


def test_the_version_in_use_and_the_one_kept(tmp_path: Path) -> None:
    prefix = layout(tmp_path, "1.4.0", "1.5.0")
    (prefix / "venv").symlink_to("venvs/1.5.0")
    (prefix / "venv.previous").symlink_to("venvs/1.4.0")
    (found,) = check_program(Config(), prefix, running="1.5.0")
    assert found.level == "ok"
    assert found.message == (f"o2o-edge 1.5.0 in {prefix}/venvs/1.5.0; 1.4.0 kept for "
                             "'install.sh rollback'")
    # the agent was not restarted after an install switched the symlink
    (stale,) = check_program(Config(), prefix, running="1.4.0")
    assert stale.level == "warn"
    assert stale.message.startswith(f"the agent runs 1.4.0, but {prefix}/venv is 1.5.0")
    assert "systemctl restart o2o-edge" in stale.fix


def test_nothing_to_go_back_to_and_no_layout(tmp_path: Path) -> None:
    prefix = layout(tmp_path, "1.5.0")
    (prefix / "venv").symlink_to("venvs/1.5.0")
    (prefix / "venv.previous").symlink_to("venvs/1.4.0")  # removed since
    (found,) = check_program(Config(), prefix, running="1.5.0")
    assert found.level == "ok" and found.message.endswith("; no version kept to go back to")
    (prefix / "venv").unlink()
    (prefix / "venv").mkdir()  # an installation from before versioned venvs
    (old,) = check_program(Config(), prefix)
    assert old.level == "skip" and "'install.sh upgrade' makes the layout" in old.message
    (here,) = check_program(Config())  # this checkout's venv is no installed version
    assert here.level == "skip" and "not an installed version" in here.message
