"""Content files fetched by their hash: a bundle's signed manifest names a large file by its
SHA-256 and size only, and the file comes as a retained message on
`o2o/v1/{store}/all/blob/{sha256}` — or not at all, when an earlier bundle brought it already.
The hash in the signed manifest is what makes an unsigned blob trustworthy.

Blobs live in `<content root>/blobs/<sha256>`; those no kept bundle names are removed, except
the ones a document still waiting for others has pinned (a catalog snapshot's parts,
agent/catalog/store.py: a content install meanwhile must not take them away).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from agent.storelink.docs import DocRefused

MAX_BLOB_BYTES = 32 * 1024 * 1024
_SHA = re.compile(r"[0-9a-f]{64}")
_PINS = ".pins-"  # + owner + ".json": the blobs an owner's waiting document needs


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and bool(_SHA.fullmatch(text))


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs"

    def path(self, sha: str) -> Path:
        return self.dir / sha

    def get(self, sha: str) -> bytes | None:
        try:
            return self.path(sha).read_bytes()
        except OSError:
            return None

    def size(self, sha: str) -> int | None:
        """The size of a blob this device has, or None."""
        try:
            return self.path(sha).stat().st_size
        except OSError:
            return None

    def put(self, sha: str, data: bytes) -> None:
        """Keep a blob that hashes to `sha`; DocRefused("bad-file-hash") otherwise."""
        if not is_sha256(sha):
            raise DocRefused("malformed", f"blob name {sha[:80]!r} is not a SHA-256")
        if len(data) > MAX_BLOB_BYTES:
            raise DocRefused("oversized", f"blob {sha[:12]}: {len(data)} bytes, at most "
                                          f"{MAX_BLOB_BYTES}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise DocRefused("bad-file-hash", f"blob {sha[:12]}: its content does not hash "
                                              "to its name")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{sha}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.path(sha))

    def pin(self, owner: str, shas: list[str]) -> None:
        """Keep these blobs through keep_only until `owner` unpins them (a file: the content
        and the catalog each have a BlobStore of this directory)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{_PINS}{owner}.tmp"
        tmp.write_text(json.dumps(sorted(shas)))
        os.replace(tmp, self.dir / f"{_PINS}{owner}.json")

    def unpin(self, owner: str) -> None:
        (self.dir / f"{_PINS}{owner}.json").unlink(missing_ok=True)

    def pinned(self) -> set[str]:
        out: set[str] = set()
        for p in self.dir.glob(f"{_PINS}*.json"):
            try:
                out.update(h for h in json.loads(p.read_text()) if is_sha256(h))
            except (OSError, ValueError, TypeError):
                continue  # a pin file cut short: its blobs are fetched again if need be
        return out

    def keep_only(self, wanted: set[str]) -> int:
        """Remove the blobs not in `wanted` nor pinned; how many were removed."""
        keep = wanted | self.pinned()
        removed = 0
        for p in self.dir.glob("*"):
            if p.name not in keep and not p.name.startswith(_PINS):
                p.unlink(missing_ok=True)
                removed += 1
        return removed
