"""Can the agent make and write its directories (state: outbox, store db, remote config;
runtime: the bus socket)? Asked before `run` starts and by `doctor`, so a path under a file or
on a read-only file system is one clear line, not a traceback from deep in the start."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.config import Config
from agent.statepaths import StatePaths


@dataclass(frozen=True)
class DirProblem:
    option: str  # the setting that names the path, e.g. "[outbox] path"
    folder: Path
    problem: str  # what is wrong, in plain words, with what to do

    def __str__(self) -> str:
        return f"{self.option}: {self.folder} {self.problem}"


def agent_dirs(cfg: Config) -> list[tuple[str, Path]]:
    """(the setting, the directory it needs), each directory once."""
    wanted = [("[outbox] path", cfg.outbox.path.parent),
              ("[kiosk] store_db", cfg.kiosk.store_db.parent),
              ("the state directory ($XDG_STATE_HOME)", StatePaths.of(cfg).state_dir),
              ("[bus] socket", cfg.bus.socket.parent)]
    seen: set[Path] = set()
    out = []
    for option, folder in wanted:
        if folder not in seen:
            seen.add(folder)
            out.append((option, folder))
    return out


def _writable(folder: Path) -> str | None:
    """None if a file can be made in the existing folder, else the reason. A real probe (a
    directory made and removed at once): access() says yes to root on /proc and knows nothing
    of a file system that refuses writes for other reasons."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".o2o-probe-", dir=folder))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def dir_problem(option: str, folder: Path) -> DirProblem | None:
    """What stops the agent from creating and writing `folder`, or None."""
    probe = folder
    try:
        while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
            probe = probe.parent
        is_dir = probe.is_dir()
    except OSError as exc:  # a parent we may not even look into
        return DirProblem(option, folder, f"cannot be checked ({exc.strerror}); fix the "
                                          "permissions of its parents or choose another path")
    if not is_dir:
        what = "is not a directory" if probe == folder else f"cannot be created: {probe} is a file"
        return DirProblem(option, folder, f"{what}; choose a path under a directory")
    reason = _writable(probe)
    if reason is None:
        return None
    if probe == folder:
        return DirProblem(option, folder, f"is not writable ({reason}); fix its permissions "
                                          "or choose a writable path")
    return DirProblem(option, folder, f"cannot be created: {probe} is not writable ({reason}); "
                                      "create it for the agent's user or choose a writable path")


def file_problems(cfg: Config) -> list[DirProblem]:
    """Database paths that exist but are not files (a directory given for the file)."""
    out = []
    for option, path in (("[outbox] path", cfg.outbox.path),
                         ("[kiosk] store_db", cfg.kiosk.store_db)):
        if path.is_dir() or (path.exists() and not path.is_file()):
            out.append(DirProblem(option, path, "is not a file; give the database file's "
                                                "name (e.g. .../outbox.db)"))
    return out


def dir_problems(cfg: Config) -> list[DirProblem]:
    """Everything that stops the agent from making or writing its files, one per path."""
    found = [p for option, folder in agent_dirs(cfg) if (p := dir_problem(option, folder))]
    return found + file_problems(cfg)
