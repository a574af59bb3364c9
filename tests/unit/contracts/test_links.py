"""Links for QR codes are ASCII URIs that mean what the IRI meant."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.links import as_uri, with_tags


def test_an_iri_becomes_its_uri() -> None:
    uri = as_uri("https://bücher.example:8443/café/ü?q=straße#teil-ä")
    assert uri == ("https://xn--bcher-kva.example:8443/caf%C3%A9/%C3%BC?q=stra%C3%9Fe"
                   "#teil-%C3%A4")


def test_an_ascii_link_is_left_as_it_is() -> None:
    link = "https://shop.example/a%20b/c?x=1&y=%C3%A9#top"
    assert as_uri(link) == link


def test_tags_replace_their_own_name_and_keep_the_rest() -> None:
    uri = with_tags("https://shop.example/é?utm_source=old&x=1",
                    {"utm_source": "kiosk", "utm_campaign": "été 😀", "utm_term": None})
    assert uri.isascii()
    query = parse_qsl(urlsplit(uri).query)
    assert query == [("x", "1"), ("utm_source", "kiosk"), ("utm_campaign", "été 😀")]
    assert unquote(urlsplit(uri).path) == "/é"


def test_a_host_idna_cannot_write_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        as_uri("https://" + "ü" * 70 + ".example/")


@given(st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40))
def test_any_path_reads_back(path: str) -> None:
    """An IRI's escapes (%XX) are already URI escapes (RFC 3987): the link means what the
    IRI meant once both are unescaped."""
    iri = "https://shop.example/" + path.replace("?", "").replace("#", "")
    uri = as_uri(iri)
    assert uri.isascii()
    assert unquote(urlsplit(uri).path) == unquote(urlsplit(iri).path)


def test_a_percent_sign_that_is_no_escape_is_written_as_one() -> None:
    assert as_uri("https://shop.example/100%-cotton/%zz?off=50%#top%") == (
        "https://shop.example/100%25-cotton/%25zz?off=50%25#top%25")
    assert as_uri("https://shop.example/a%2Fb") == "https://shop.example/a%2Fb"
