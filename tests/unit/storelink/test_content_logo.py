"""A content bundle's theme logo is one of its files, like a page's picture: the store link
refuses the bundle before installing it otherwise (the kiosk could not show it)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from agent.storelink.content import install_bundle
from agent.storelink.docs import Doc, DocRefused


def bundle(logo: str, files: dict[str, bytes]) -> Doc:
    return Doc("content", "s", "all", 1, 0.0, 1e12, {
        "manifest": {"version": 1, "pages": [{"id": "p", "title": {"en": "T"}}],
                     "theme": {"primary": "#0b5fff", "logo": logo}},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(),
                         "data_b64": base64.b64encode(data).decode()}
                  for name, data in files.items()}}, "k")


def test_the_logo_must_be_a_file_of_the_bundle(tmp_path: Path) -> None:
    with pytest.raises(DocRefused, match=re.escape("its logo 'img/logo.png' is not one of the bundle")):
        install_bundle(bundle("img/logo.png", {"img/other.png": b"png"}), tmp_path)
    where = install_bundle(bundle("img/logo.png", {"img/logo.png": b"png"}), tmp_path)
    assert (where / "img" / "logo.png").read_bytes() == b"png"


def test_a_logo_name_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocRefused, match=re.escape("theme.logo: must be a file name in the bundle")):
        install_bundle(bundle("../../etc/passwd", {"img/logo.png": b"png"}), tmp_path)
