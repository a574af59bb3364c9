"""The agent's runtime directory (its bus socket) when no XDG_RUNTIME_DIR is set.

A shared /tmp/o2o-edge/ could be made first by another user, who would then own the socket's
directory: impersonate the agent to the kiosk and the CLI, or keep it from starting. The
fallback is per user (/tmp/o2o-edge-<uid>/), made 0700, and refused when it is there already
but owned by someone else or writable by others.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from agent.errors import ConfigError


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:  # systemd and login sessions make this one per user, 0700
        return Path(base) / "o2o-edge"
    path = Path(tempfile.gettempdir()) / f"o2o-edge-{os.getuid()}"
    private_dir(path)
    return path


def private_dir(path: Path) -> None:
    """Make `path` a directory only this user can enter, or say why it is not one."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the runtime directory {path}: {exc.strerror}; "
                          "set XDG_RUNTIME_DIR or [bus] socket to a directory of yours") from None
    st = os.lstat(path)  # not stat: a symlink planted there is refused, not followed
    fix = f"remove it (sudo rm -r {path}) or set XDG_RUNTIME_DIR or [bus] socket"
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the runtime directory {path} is not a directory; {fix}")
    if st.st_uid != os.getuid():
        raise ConfigError(f"the runtime directory {path} belongs to another user (uid "
                          f"{st.st_uid}), who could impersonate or block the agent; {fix}")
    if st.st_mode & 0o022:
        raise ConfigError(f"the runtime directory {path} is writable by other users (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); {fix}")
