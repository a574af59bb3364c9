"""Unix socket paths that fit: sun_path holds 108 bytes, and dbus-daemon refuses names near
that. A socket meant for a deep folder (pytest's tmp_path, a scenario's workdir) goes into a
fresh folder under the temporary directory instead."""

from __future__ import annotations

import tempfile
from pathlib import Path

SOCKET_PATH_MAX = 100


def fitting_socket(preferred: Path, prefix: str) -> tuple[Path, str]:
    """`preferred` if it fits, else the same name in a new temporary folder; and that folder
    ("" if none was made), for the caller to remove."""
    if len(str(preferred)) <= SOCKET_PATH_MAX:
        return preferred, ""
    folder = tempfile.mkdtemp(prefix=prefix)
    return Path(folder) / preferred.name, folder
