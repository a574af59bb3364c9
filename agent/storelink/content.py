"""Content bundles from upstream: a signed "content" document carrying the kiosk's manifest and
the bundle's files, each named with its SHA-256 in the signed part.

    body = {"manifest": {...the kiosk's manifest.json...},
            "files": {"img/coffee.png": {"sha256": "<hex>", "data_b64": "..."},
                      "video/loop.mp4": {"sha256": "<hex>", "size": 12345678}}}

A file with its data inline travels in the document (up to the document's 2 MiB); a file
named only by hash and size is taken from the blob store (blobs.py) — fetched from the broker
if this device does not have it yet, in which case the bundle waits (DocDeferred) and is
installed when the last file arrives.

The manifest is checked with the kiosk's own validator and every file against its hash and
name (no absolute paths, no ".."); a bundle with any problem is refused whole. A good one is
written to `<state>/content/v<version>/` and `<state>/content/current` is switched to it in
one step, so the kiosk never sees half a bundle — and after a reboot, or with the broker
gone, it serves the last one it got.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from agent.storelink.blobs import MAX_BLOB_BYTES, BlobStore, is_sha256
from agent.storelink.docs import Doc, DocDeferred, DocRefused

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}){0,3}")
KEEP = 3  # bundles kept on disk (the current one and the two before)


def content_root(state_dir: Path) -> Path:
    return state_dir / "content"


def install_bundle(doc: Doc, root: Path, blobs: BlobStore | None = None) -> Path:
    from kiosk.content import parse_manifest
    from kiosk.errors import KioskError

    body = doc.body
    if not isinstance(body, dict) or not isinstance(body.get("manifest"), dict):
        raise DocRefused("malformed", 'a content document needs {"manifest": {...}, '
                                      '"files": {...}}')
    try:
        parse_manifest(body["manifest"], f"content v{doc.version}")
    except KioskError as exc:
        raise DocRefused("malformed", str(exc)) from None
    files: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    missing: list[str] = []
    blobs = blobs or BlobStore(root)
    for name, entry in (body.get("files") or {}).items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise DocRefused("malformed", f"file name {name!r} is not allowed")
        if not isinstance(entry, dict) or not is_sha256(entry.get("sha256")):
            raise DocRefused("malformed", f"{name}: needs sha256 and data_b64 or size")
        hashes[name] = entry["sha256"]
        if "data_b64" not in entry:  # by hash: from the blob store
            size = entry.get("size")
            if not isinstance(size, int) or isinstance(size, bool) \
                    or not 0 <= size <= MAX_BLOB_BYTES:
                raise DocRefused("malformed", f"{name}: size must be 0-{MAX_BLOB_BYTES} bytes")
            data = blobs.get(entry["sha256"])
            if data is None:
                missing.append(entry["sha256"])
            elif len(data) != size:
                raise DocRefused("bad-file-hash", f"{name}: {len(data)} bytes, the manifest "
                                                  f"says {size}")
            else:
                files[name] = data
            continue
        try:
            data = base64.b64decode(str(entry.get("data_b64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise DocRefused("malformed", f"{name}: data_b64 is not base64") from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise DocRefused("bad-file-hash", f"{name}: its SHA-256 does not match the "
                                              "signed manifest")
        files[name] = data
        blobs.put(entry["sha256"], data)  # a later bundle may name it by hash alone
    if missing:
        raise DocDeferred(sorted(set(missing)), f"content v{doc.version} waits for "
                                                f"{len(set(missing))} file(s) by hash")
    target = root / f"v{doc.version}"
    staging = root / f".v{doc.version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    (staging).mkdir(parents=True)
    (staging / "manifest.json").write_text(json.dumps(body["manifest"], ensure_ascii=False))
    (staging / ".hashes.json").write_text(json.dumps(hashes))
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    link = root / "current"
    tmp_link = root / ".current.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(target.name, tmp_link)
    tmp_link.replace(link)  # one rename: the kiosk sees the old bundle or the new one
    _prune(root, keep=target.name, blobs=blobs)
    return target


def _prune(root: Path, keep: str, blobs: BlobStore) -> None:
    versions = sorted((p for p in root.glob("v*") if p.is_dir()),
                      key=lambda p: int(p.name[1:]) if p.name[1:].isdigit() else -1)
    for old in versions[:-KEEP]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    wanted: set[str] = set()  # blobs a kept bundle names
    for kept in root.glob("v*"):
        try:
            wanted.update(json.loads((kept / ".hashes.json").read_text()).values())
        except (OSError, ValueError):
            continue
    blobs.keep_only(wanted)
