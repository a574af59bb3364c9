"""One line for an operating-system error a user can meet on the command line: the path, what
went wrong in plain words, and what to do about it."""

from __future__ import annotations

import errno
from typing import Final

# errno -> (what it means here, what to do)
_ADVICE: Final[dict[int, tuple[str, str]]] = {
    errno.ENOENT: ("does not exist", "check the path"),
    errno.EACCES: ("permission denied", "check its permissions, or run as the agent's user"),
    errno.EPERM: ("not permitted", "check its permissions, or run as the agent's user"),
    errno.EISDIR: ("is a directory", "give a file, not a directory"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "choose another path"),
    errno.EEXIST: ("already exists", "choose another path, or move the existing one aside"),
    errno.EROFS: ("is on a read-only file system", "choose a writable path"),
    errno.ENOSPC: ("no space left on the device", "free disk space"),
    errno.EDQUOT: ("disk quota exceeded", "free disk space"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.ELOOP: ("too many symbolic links", "check the path's symbolic links"),
    errno.ECONNREFUSED: ("connection refused", "check the address and that the server runs"),
    errno.EADDRINUSE: ("address already in use", "stop what uses it or choose another port"),
    errno.ENXIO: ("no such device or address", "check the path names a file"),
}


def describe(exc: OSError) -> str:
    """'PATH: what happened; what to do' (no traceback, no Python class names)."""
    what, fix = _ADVICE.get(exc.errno or -1, (exc.strerror or str(exc), ""))
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    text = f"{where}: {what}" if where else what
    return f"{text}; {fix}" if fix else text
