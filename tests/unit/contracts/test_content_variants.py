"""A/B variants of a content page: checked with the rest of the bundle (each problem by its
place, the same words from agent and kiosk), shown with their own texts and picture, and
picked per shopper session in proportion to their weights, the same all session."""

from __future__ import annotations

import copy
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.content_manifest import ManifestError, parse_manifest
from agent.contracts.content_variants import session_context
from agent.storelink.content import install_bundle
from agent.storelink.docs import Doc, DocRefused
from kiosk import content as kiosk_content
from kiosk.errors import KioskError
from kiosk.session import ShopperSession

PAGE: dict[str, Any] = {
    "id": "coffee", "title": {"en": "Coffee", "de": "Kaffee"}, "offer": {"en": "2 for 1"},
    "link": "https://shop.example/p/1", "campaign": "autumn", "image": "img/a.png",
    "variants": [{"name": "a", "weight": 1},
                 {"name": "b", "weight": 3, "title": {"en": "Try our autumn blend"},
                  "offer": {"en": "3 for 2"}, "image": "img/b.png"}]}


def manifest(**page: Any) -> dict[str, Any]:
    return {"version": 4, "pages": [{**copy.deepcopy(PAGE), **page}]}


def test_a_variant_shows_its_own_texts_and_picture_and_the_page_keeps_its_link() -> None:
    page = parse_manifest(manifest()).pages["coffee"]
    assert [(v.name, v.weight) for v in page.variants] == [("a", 1.0), ("b", 3.0)]
    b = page.with_variant("b")
    assert (b.variant, b.title, b.offer, b.image) == (
        "b", {"en": "Try our autumn blend"}, {"en": "3 for 2"}, "img/b.png")
    assert (b.link, b.campaign, b.id) == (page.link, page.campaign, page.id)
    a = page.with_variant("a")  # a variant without texts of its own: the page's
    assert (a.variant, a.title, a.offer, a.image) == ("a", page.title, page.offer, "img/a.png")
    assert page.with_variant("gone") is page


@pytest.mark.parametrize(("variants", "said"), [
    ([{"name": "a", "weight": 0}, {"name": "b"}], "pages[0].variants[0].weight: must be a "
                                                  "number above 0"),
    ([{"name": "a", "weight": -2}, {"name": "b"}], "pages[0].variants[0].weight"),
    ([{"name": "a"}, {"name": "b", "weight": "3"}], "pages[0].variants[1].weight"),
    ([{"name": "a"}, {"name": "b", "weight": True}], "pages[0].variants[1].weight"),
    ([{"name": "a"}, {"name": "b", "weight": 1001}], "at most 1000"),
    ([{"name": "a"}, {"name": "a"}], "pages[0].variants[1].name: 'a' is used twice"),
    ([{"name": n} for n in "abcde"], "pages[0].variants: must be a list of 2 to 4 variants"),
    ([{"name": "a"}], "pages[0].variants: must be a list of 2 to 4"),
    ({"a": 1}, "pages[0].variants: must be a list"),
    ([{"name": "A b"}, {"name": "b"}], "pages[0].variants[0].name: must be lowercase"),
    ([{"name": "a", "link": "https://x.example"}, {"name": "b"}],
     "pages[0].variants[0]: unknown key 'link'"),
    ([{"name": "a", "image": "../etc/passwd"}, {"name": "b"}], "pages[0].variants[0].image"),
    ([{"name": "a", "title": {"de": "nur Deutsch"}}, {"name": "b"}],
     "pages[0].variants[0].title: needs an English text"),
    (["a", {"name": "b"}], "pages[0].variants[0]: must be an object"),
])
def test_a_bad_variant_refuses_the_bundle_by_its_place_on_both_sides(
        variants: Any, said: str) -> None:
    with pytest.raises(ManifestError) as agent_err:
        parse_manifest(manifest(variants=variants), "content v4")
    assert said in str(agent_err.value)
    with pytest.raises(KioskError) as kiosk_err:
        kiosk_content.parse_manifest(manifest(variants=variants), "content v4")
    assert str(kiosk_err.value) == str(agent_err.value)


def test_a_variant_picture_missing_from_the_files_is_refused_before_install(
        tmp_path: Path) -> None:
    doc = Doc(kind="content", store="s1", device="d1", version=4, issued=0.0, expires=0.0,
              body={"manifest": manifest(), "files": {"img/a.png": "aGk="}}, key_id="k")
    with pytest.raises(DocRefused, match=r"'coffee' variant 'b': its image 'img/b\.png'"):
        install_bundle(doc, tmp_path)
    assert not any(tmp_path.iterdir())


def test_variants_are_picked_in_proportion_and_kept_for_the_session() -> None:
    page = parse_manifest(manifest()).pages["coffee"]
    session = ShopperSession(random.Random(7))
    picked: Counter[str] = Counter()
    for _ in range(4000):
        first = session.shown(page)
        # the same shopper opening the page again sees the same variant
        assert all(session.shown(page).variant == first.variant for _ in range(3))
        assert session.variants == {"coffee": first.variant}
        picked[first.variant] += 1
        session.reset()
        assert session.variants == {}
    # weights 1:3 -> 1000 expected "a" (binomial sd 27): within 4 sd
    assert 890 <= picked["a"] <= 1110 and picked["a"] + picked["b"] == 4000
    # the same seed picks the same sequence: tests can rely on it
    again = ShopperSession(random.Random(7))
    assert again.shown(page).variant == ShopperSession(random.Random(7)).shown(page).variant


def test_a_page_without_variants_is_shown_as_it_is() -> None:
    plain = parse_manifest(manifest(variants=None)).pages["coffee"]
    session = ShopperSession(random.Random(1))
    assert session.shown(plain) is plain and session.variants == {}


def test_a_new_bundle_without_the_picked_variant_picks_again() -> None:
    session = ShopperSession(random.Random(3))
    session.variants["coffee"] = "gone"
    page = parse_manifest(manifest()).pages["coffee"]
    assert session.shown(page).variant in ("a", "b")
    assert session.variants["coffee"] in ("a", "b")


@pytest.mark.parametrize(("request_", "kept"), [
    ({"content_version": 4, "variants": {"coffee": "b"}},
     {"content_version": 4, "variants": {"coffee": "b"}}),
    ({"content_version": True, "variants": {"Coffee!": "b"}}, {}),
    ({"content_version": 0, "variants": {"coffee": "B B"}}, {}),
    ({"variants": {f"p{i}": "a" for i in range(65)}}, {}),
    ({"content_version": "4", "variants": ["coffee"]}, {}),
])
def test_what_a_request_says_of_its_session_is_kept_only_when_sane(
        request_: dict[str, Any], kept: dict[str, Any]) -> None:
    assert session_context(request_) == kept
