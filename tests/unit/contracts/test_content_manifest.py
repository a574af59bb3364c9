"""The content manifest is one contract: the agent refuses, before installing, exactly the
bundles the kiosk could not show, with the same message; and checking one loads nothing of the
kiosk (the agent must run without it)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from agent.contracts.content_manifest import ManifestError, parse_manifest
from agent.errors import AgentError, Reason
from agent.storelink.content import check_names, install_bundle
from agent.storelink.docs import Doc, DocRefused
from kiosk import content as kiosk_content
from kiosk.errors import KioskError, KioskReason

GOOD: dict[str, Any] = {
    "version": 3,
    "pages": [{"id": "coffee", "title": {"en": "Coffee"}, "link": "https://shop.example/p/1",
               "open_by": {"nfc": ["04A1"]}}],
}
BAD: dict[str, Any] = {"version": 0, "pages": [{"id": "Coffee!", "title": {"de": "Kaffee"}}]}


def test_a_good_manifest_reads_the_same_on_both_sides() -> None:
    agent_side = parse_manifest(GOOD, "content v3")
    kiosk_side = kiosk_content.parse_manifest(GOOD, "content v3")
    assert agent_side == kiosk_side
    assert agent_side.page_for("nfc", "04a1") is not None


def test_a_bad_manifest_is_refused_with_the_same_words_by_agent_and_kiosk(tmp_path: Any) -> None:
    with pytest.raises(ManifestError) as agent_err:
        parse_manifest(BAD, "content v0")
    assert isinstance(agent_err.value, AgentError)
    assert agent_err.value.reason is Reason.BAD_CONTENT
    with pytest.raises(KioskError) as kiosk_err:
        kiosk_content.parse_manifest(BAD, "content v0")
    assert kiosk_err.value.reason is KioskReason.BAD_CONTENT
    assert str(kiosk_err.value) == str(agent_err.value)
    assert "version: must be a whole number from 1" in str(agent_err.value)
    doc = Doc(kind="content", store="s1", device="d1", version=1, issued=0.0, expires=0.0,
              body={"manifest": BAD, "files": {}}, key_id="k")
    with pytest.raises(DocRefused) as refused:
        install_bundle(doc, tmp_path)
    assert str(agent_err.value).split(": ", 1)[1] in str(refused.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_manifest_file_name_is_reserved_for_delivered_files() -> None:
    with pytest.raises(DocRefused, match="bundle's own"):
        check_names(["img/a.png", "Manifest.JSON"])


def test_checking_a_manifest_loads_nothing_of_the_kiosk() -> None:
    code = ("import sys, agent.storelink.content, agent.contracts.content_manifest as m\n"
            "m.parse_manifest(" + repr(GOOD) + ")\n"
            "print(sorted(n for n in sys.modules if n == 'kiosk' or n.startswith('kiosk.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("look", "problem"), [
    ({"theme": {"primary": "red"}}, 'theme.primary: must be a colour like "#0b5fff"'),
    ({"theme": {"primary": "#0b5fff", "font": "x"}}, "theme.font: unknown key"),
    ({"theme": {"logo": "../logo.png"}}, "theme.logo: must be a file name in the bundle"),
    ({"theme": {"dark": "yes"}}, "theme.dark: must be true or false"),
    ({"page_image": "../secret.png"}, "pages[0].image: must be a file name in the bundle"),
    ({"page_image": "manifest.json"}, "pages[0].image: must be a file name in the bundle"),
])
def test_a_bad_look_is_refused_by_the_agent_before_the_kiosk_sees_it(
        tmp_path: Any, look: dict[str, Any], problem: str) -> None:
    manifest: dict[str, Any] = {**GOOD, "pages": [dict(GOOD["pages"][0])]}
    if "theme" in look:
        manifest["theme"] = look["theme"]
    else:
        manifest["pages"][0]["image"] = look["page_image"]
    doc = Doc(kind="content", store="s1", device="d1", version=1, issued=0.0, expires=0.0,
              body={"manifest": manifest, "files": {}}, key_id="k")
    with pytest.raises(DocRefused) as refused:
        install_bundle(doc, tmp_path)
    assert problem in str(refused.value)
    with pytest.raises(KioskError) as kiosk_err:  # the kiosk says the same of it
        kiosk_content.parse_manifest(manifest, "content v1")
    assert problem in str(kiosk_err.value)
    assert not any(tmp_path.iterdir())


def test_a_page_picture_that_is_not_among_the_files_is_refused(tmp_path: Any) -> None:
    manifest: dict[str, Any] = {**GOOD, "pages": [{**GOOD["pages"][0], "image": "img/a.png"}],
                                "theme": {"primary": "#0B5FFF", "dark": False}}
    assert parse_manifest(manifest).pages["coffee"].image == "img/a.png"
    doc = Doc(kind="content", store="s1", device="d1", version=1, issued=0.0, expires=0.0,
              body={"manifest": manifest, "files": {}}, key_id="k")
    with pytest.raises(DocRefused) as refused:
        install_bundle(doc, tmp_path)
    assert "'img/a.png' is not one of the bundle's files" in str(refused.value)
