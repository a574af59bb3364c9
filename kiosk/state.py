"""The kiosk's own state directory: what must outlive one kiosk process, such as the staff PIN
lock-out (textual-serve starts a kiosk process per browser connection, so state kept in
memory would start over with every new connection).

`$XDG_STATE_HOME/o2o-edge-kiosk` (under systemd `StateDirectory=o2o-edge-kiosk`, i.e.
/var/lib/o2o-edge-kiosk), else a private folder in the temporary directory (per service with
systemd's PrivateTmp, shared by all sessions of one served kiosk). Never the agent's state
directory: the kiosk runs as its own user and reads nothing of the agent's.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Final

NAME: Final = "o2o-edge-kiosk"


def _private_dir(path: Path) -> bool:
    """`path` exists (made if need be) as a real directory of ours that nobody else may
    write to: a folder another user made or linked could feed us a forged state."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def state_dir() -> Path | None:
    """Where the kiosk keeps its state; None when no private place can be written."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    for candidate in (Path(base) / NAME,
                      Path(tempfile.gettempdir()) / f"{NAME}-{os.getuid()}"):
        if _private_dir(candidate):
            return candidate
    return None
