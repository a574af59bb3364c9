"""Content files by hash: a bundle naming a file it does not carry waits for it, installs
from the blob store once it is there, and blobs no kept bundle names are removed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.storelink.blobs import BlobStore
from agent.storelink.content import install_bundle
from agent.storelink.docs import Doc, DocDeferred, DocRefused


def bundle(version: int, files: dict[str, bytes]) -> Doc:
    return Doc("content", "s", "all", version, 0.0, 1e12, {
        "manifest": {"version": version, "pages": [{"id": "p", "title": {"en": "T"}}]},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in files.items()}}, "k")


def test_waits_for_files_by_hash_then_installs_and_prunes(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    a, b = b"A" * 1000, b"B" * 2000
    with pytest.raises(DocDeferred) as waiting:
        install_bundle(bundle(1, {"a.bin": a, "b.bin": b}), tmp_path, blobs)
    assert sorted(waiting.value.needs) == sorted(hashlib.sha256(x).hexdigest() for x in (a, b))
    for data in (a, b):
        blobs.put(hashlib.sha256(data).hexdigest(), data)
    where = install_bundle(bundle(1, {"a.bin": a, "b.bin": b}), tmp_path, blobs)
    assert (where / "b.bin").read_bytes() == b
    for v in range(2, 6):  # later bundles without b: once v1 is pruned, b's blob goes too
        install_bundle(bundle(v, {"a.bin": a}), tmp_path, blobs)
    assert blobs.get(hashlib.sha256(a).hexdigest()) == a
    assert blobs.get(hashlib.sha256(b).hexdigest()) is None


def test_a_blob_must_hash_to_its_name(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(DocRefused, match="bad-file-hash"):
        blobs.put(hashlib.sha256(b"x").hexdigest(), b"y")
    with pytest.raises(DocRefused, match="malformed"):
        blobs.put("../../etc/passwd", b"y")
    assert not blobs.dir.exists() or not any(blobs.dir.iterdir())  # nothing kept
