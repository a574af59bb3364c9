"""Content bundles from upstream: a signed "content" document carrying the kiosk's manifest and
the bundle's files, each named with its SHA-256 in the signed part.

    body = {"manifest": {...the kiosk's manifest.json...},
            "files": {"img/coffee.png": {"sha256": "<hex>", "data_b64": "..."},
                      "video/loop.mp4": {"sha256": "<hex>", "size": 12345678}}}

A file with its data inline travels in the document (up to the document's 2 MiB); a file
named only by hash and size is taken from the blob store (blobs.py) — fetched from the broker
if this device does not have it yet, in which case the bundle waits (DocDeferred) and is
installed when the last file arrives.

The manifest is checked with the kiosk's validator (agent/contracts/content_manifest.py) and
every file against its hash and name (no absolute paths, no "..", not a name the bundle's own
files use — `manifest.json` — in any case, no two names that differ only in case, no file that
is also a folder of another: `a` and `a/b`); a bundle with any problem is refused whole. A
good one is written to `<state>/content/v<version>/` and `<state>/content/current` is switched
to it in one step, so the kiosk never sees half a bundle — and after a reboot, or with the broker
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
from typing import Final

from agent.contracts.content_manifest import RESERVED_NAMES, ManifestError, parse_manifest
from agent.storelink.blobs import MAX_BLOB_BYTES, BlobStore, is_sha256
from agent.storelink.docs import Doc, DocDeferred, DocRefused
from agent.storelink.reports import clip

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}){0,3}")
KEEP = 3  # bundles kept on disk (the current one and the two before)
HASHES = ".hashes.json"  # which blobs a kept bundle names (for pruning)
MAX_FILES: Final = 512  # a kiosk bundle is pages and their pictures; each by-hash file is a
# subscription while it is fetched
MAX_BUNDLE_BYTES: Final = 256 * 1024 * 1024  # on an SD card, kept KEEP times at most


def check_names(names: list[object]) -> None:
    """DocRefused unless every name can be written into the bundle's folder as a file of
    its own: allowed characters, none of the bundle's own files, no two that are one file
    on a case-insensitive disk, no file that is another one's folder."""
    if len(names) > MAX_FILES:
        raise DocRefused("malformed", f"{len(names)} files, at most {MAX_FILES}")
    reserved = {n.casefold() for n in (*RESERVED_NAMES, HASHES)}
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise DocRefused("malformed", f"file name {clip(repr(name), 80)} is not allowed "
                                          "(letters, digits, '.', '_', '-'; up to 4 folders)")
        folded = name.casefold()
        if folded in reserved or folded.split("/", 1)[0] in reserved:
            raise DocRefused("malformed", f"file name {name!r} is the bundle's own; "
                                          "name the file otherwise")
        if folded in seen:
            raise DocRefused("malformed", f"files {seen[folded]!r} and {name!r} differ only "
                                          "in case; one file on many disks")
        seen[folded] = name
    for folded, name in seen.items():
        parts = folded.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in seen:
                raise DocRefused("malformed", f"{seen[folder]!r} is a file and also the "
                                              f"folder of {name!r}")


def install_bundle(doc: Doc, root: Path, blobs: BlobStore | None = None) -> Path:
    body = doc.body
    if not isinstance(body, dict) or not isinstance(body.get("manifest"), dict):
        raise DocRefused("malformed", 'a content document needs {"manifest": {...}, '
                                      '"files": {...}}')
    try:
        bundle = parse_manifest(body["manifest"], f"content v{doc.version}")
    except ManifestError as exc:
        raise DocRefused("malformed", str(exc)) from None
    entries = body.get("files", {})
    if not isinstance(entries, dict):
        raise DocRefused("malformed", '"files" must be an object of file names')
    check_names(list(entries))
    for page in bundle.pages.values():  # a picture the kiosk could not find: refused here
        for owner, image in ((repr(page.id), page.image),
                             *((f"{page.id!r} variant {v.name!r}", v.image)
                               for v in page.variants)):
            if image and image not in entries:
                raise DocRefused("malformed", f"page {owner}: its image {image!r} is not "
                                              "one of the bundle's files")
    theme = body["manifest"].get("theme")
    logo = theme.get("logo") if isinstance(theme, dict) else None
    if logo is not None and logo not in entries:
        raise DocRefused("malformed", f"theme: its logo {logo!r} is not one of the bundle's "
                                      "files")
    files: dict[str, bytes | Path] = {}
    hashes: dict[str, str] = {}
    missing: list[str] = []
    total = 0
    blobs = blobs or BlobStore(root)
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not is_sha256(entry.get("sha256")):
            raise DocRefused("malformed", f"{name}: needs sha256 and data_b64 or size")
        hashes[name] = entry["sha256"]
        if "data_b64" not in entry:  # by hash: from the blob store
            size = entry.get("size")
            if not isinstance(size, int) or isinstance(size, bool) \
                    or not 0 <= size <= MAX_BLOB_BYTES:
                raise DocRefused("malformed", f"{name}: size must be 0-{MAX_BLOB_BYTES} bytes")
            total += size
            if total > MAX_BUNDLE_BYTES:
                raise DocRefused("oversized", f"the files add up to more than "
                                              f"{MAX_BUNDLE_BYTES} bytes")
            have = blobs.size(entry["sha256"])
            if have is None:
                missing.append(entry["sha256"])
            elif have != size:
                raise DocRefused("bad-file-hash", f"{name}: {have} bytes, the manifest "
                                                  f"says {size}")
            else:
                files[name] = blobs.path(entry["sha256"])
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
    (staging / "manifest.json").write_text(json.dumps(body["manifest"], ensure_ascii=False),
                                           encoding="utf-8")
    (staging / HASHES).write_text(json.dumps(hashes))
    for name, content in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):  # a blob: copied, not read into memory
            shutil.copyfile(content, staging / name)
        else:
            (staging / name).write_bytes(content)
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
            wanted.update(json.loads((kept / HASHES).read_text()).values())
        except (OSError, ValueError):
            continue
    blobs.keep_only(wanted)
