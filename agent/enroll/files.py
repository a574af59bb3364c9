"""The key and certificate files: each written whole or not at all, and a renewed pair put in
place so that a power cut at any moment leaves a key and a certificate that belong together
(settle() finishes a replacement cut short).

Beside the pair in use (cert_file, key_file) live, for a while:
    KEY.new, CERT.new   a renewal's key (from its request) and its signed certificate
    KEY.old, CERT.old   the pair in use before the last renewal, kept for a person to go back to
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any


def pending(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".new")


def previous(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".old")


def write_atomic(path: Path, data: bytes, mode: int, like: Path | None = None) -> None:
    """Written whole or not at all (a temporary file renamed), with `mode`, and the group of
    `like` (the configuration file: the agent's group reads it) when this user may set it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if like is not None:
            # not root and not in that group: the file stays this user's
            with contextlib.suppress(OSError):
                os.fchown(fd, -1, like.stat().st_gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """The renames in `directory` survive a power cut (the names live in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_pair(cert_file: Path, key_file: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return cert, key


def _matches(cert_file: Path, key_file: Path) -> bool:
    from agent.enroll.certs import same_key

    try:
        cert, key = load_pair(cert_file, key_file)
    except (OSError, ValueError, TypeError):
        return False
    return same_key(cert, key)


def promote(cert_file: Path, key_file: Path) -> None:
    """The pending pair (CERT.new, KEY.new) becomes the pair in use; the pair in use is kept
    as CERT.old and KEY.old. The key goes first: a cut between the two renames leaves the new
    key beside CERT.new, which settle() finishes."""
    for current in (cert_file, key_file):
        if current.exists():
            old = previous(current)
            old.unlink(missing_ok=True)
            os.link(current, old)  # the same file under a second name: nothing half-copied
    os.replace(pending(key_file), key_file)
    os.replace(pending(cert_file), cert_file)
    _sync_dir(cert_file.parent)
    if key_file.parent != cert_file.parent:
        _sync_dir(key_file.parent)


def settle(cert_file: Path, key_file: Path) -> bool:
    """Finish a promote() that a power cut interrupted: the new key in place, its certificate
    still CERT.new. True when it did."""
    if _matches(cert_file, key_file) or not _matches(pending(cert_file), key_file):
        return False
    os.replace(pending(cert_file), cert_file)
    _sync_dir(cert_file.parent)
    return True
