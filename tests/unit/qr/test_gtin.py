"""Product barcodes: EAN-13, UPC-A, EAN-8 and GS1 Digital Link read from camera-like frames
as the GTIN-14 a catalog keys products by, and every malformed or hostile code refused with
its reason (never a traceback)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyzbar import pyzbar

from drivers.qr import gtin
from drivers.qr.classify import QrPolicy, classify
from drivers.qr.decoders import RobustDecoder, ZbarDecoder, to_grey
from simulators.qr_frames import variant_set

SEED = 41
POLICY = QrPolicy(domains=("shop.example",))


def _gtins(frames_name: str, n: int, decoder: RobustDecoder | ZbarDecoder) -> list[str | None]:
    """Per frame: the GTIN read from it (None: nothing read or not a product code)."""
    out: list[str | None] = []
    for f in variant_set(frames_name, n, seed=SEED):
        found = None
        for c in decoder.decode(to_grey(f.image)):
            v = classify(c.payload, POLICY, 0.0, text=c.text, kind=c.kind)
            if v.cls == "gtin":
                found = str(v.detail["gtin"])
        out.append(found)
    return out


def _expected(frames_name: str, n: int) -> list[str]:
    out = []
    for f in variant_set(frames_name, n, seed=SEED):
        if f.payload.startswith("http"):
            out.append(f.payload.split("/01/")[1][:14])
        else:
            out.append(f.payload.rjust(14, "0"))
    return out


@pytest.mark.parametrize("name", ["ean13", "upca", "ean8", "gs1-dl", "gs1-dl-small-dim"])
def test_product_codes_in_camera_frames_are_read_as_their_gtin(name: str) -> None:
    got = _gtins(name, 6, RobustDecoder(budget_ms=200))
    assert got == _expected(name, 6)


def test_turned_and_blurred_barcodes_are_read_at_least_as_often_as_zbar_reads_them() -> None:
    decoder = RobustDecoder(budget_ms=200)  # a loaded machine must not decide the result
    for name in ("ean13-rotated", "ean13-small-dim-blurred"):
        ours = sum(g is not None for g in _gtins(name, 8, decoder))
        theirs = sum(g is not None for g in _gtins(name, 8, ZbarDecoder()))
        assert ours >= 3 and ours >= theirs - 3, (name, ours, theirs)


def test_upca_and_its_ean13_form_name_one_product() -> None:
    upca = classify(b"036000291452", POLICY, 0.0, kind="UPCA")
    as_ean = classify(b"0036000291452", POLICY, 0.0, kind="EAN13")
    link = classify(b"https://id.gs1.org/01/00036000291452", POLICY, 0.0)
    assert upca.detail["gtin"] == as_ean.detail["gtin"] == link.detail["gtin"] == "00036000291452"
    assert classify(b"96385074", POLICY, 0.0, kind="EAN8").detail == {
        "gtin": "00000096385074",
        "symbology": "EAN8",
    }


def test_digital_link_examples_of_the_gs1_standard() -> None:
    p = gtin.parse_digital_link("https://id.gs1.org/01/09506000134352")
    assert (p.gtin, p.symbology, p.host) == ("09506000134352", "DigitalLink", "id.gs1.org")
    p = gtin.parse_digital_link(
        "https://id.gs1.org/01/09506000134352/10/ABC%2F123/21/12345?17=201231&linkType=gs1:pip"
    )
    assert (p.lot, p.serial, p.attributes) == ("ABC/123", "12345", {"17": "201231"})
    p = gtin.parse_digital_link("https://example.com/some/prefix/gtin/9506000134352/lot/A1")
    assert (p.gtin, p.lot, p.host) == ("09506000134352", "A1", "example.com")
    p = gtin.parse_digital_link("https://id.gs1.org/01/09506000134352/22/2A")
    assert p.variant == "2A" and p.as_json()["variant"] == "2A"
    # a Digital Link is read whatever the host: it names a product, it is never opened
    assert classify(b"https://id.gs1.org/01/09506000134352", POLICY, 0.0).cls == "gtin"


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("4006381333932", "EAN13", "gtin-bad-check-digit"),
        ("400638133393", "EAN13", "gtin-bad-length"),
        ("40063813339311", "EAN13", "gtin-bad-length"),
        ("4006381A33931", "EAN13", "gtin-not-digits"),
        (
            "\uff14\uff10\uff10\uff16\uff13\uff18\uff11\uff13\uff13\uff13\uff19\uff13\uff11",
            "EAN13",
            "gtin-not-digits",
        ),  # full-width
        ("036000291453", "UPCA", "gtin-bad-check-digit"),
        ("96385075", "EAN8", "gtin-bad-check-digit"),
        ("9" * 5000, "EAN13", "too-long"),
        ("", "EAN13", "empty"),
    ],
)
def test_bad_retail_barcodes_are_refused_with_their_reason(
    text: str, kind: str, reason: str
) -> None:
    v = classify(text.encode(), POLICY, 0.0, kind=kind)
    assert (v.cls, v.reason) == ("rejected", reason)
    assert text not in str(v.as_json()) or not text  # a refused code keeps only its hash


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("https://id.gs1.org/01/09506000134353", "gtin-bad-check-digit"),
        ("https://id.gs1.org/01/0950600013435", "gtin-bad-check-digit"),
        ("https://id.gs1.org/01/09506000134", "gtin-bad-length"),
        ("https://id.gs1.org/01/0950600013435X", "gtin-not-digits"),
        ("https://id.gs1.org/01/", "gtin-not-digits"),
        ("https://id.gs1.org/01", "host-not-allowlisted"),  # no GTIN: an ordinary link
        ("https://id.gs1.org/01/09506000134352/21/1/10/A", "gs1-malformed"),  # out of order
        ("https://id.gs1.org/01/09506000134352/10/A/10/B", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352/10", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352/99/A", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352/10/" + "A" * 21, "gs1-bad-value"),
        ("https://id.gs1.org/01/09506000134352/10/%C3%A9", "gs1-bad-value"),
        ("https://id.gs1.org/01/09506000134352/10/%FF", "gs1-bad-value"),
        ("https://id.gs1.org/01/09506000134352?10=A", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352?17=%FF", "gs1-bad-value"),
        ("https://user@id.gs1.org/01/09506000134352", "gs1-malformed"),
        ("https://id.gs1.org:99999/01/09506000134352", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352#x", "gs1-malformed"),
        ("https://-/01/09506000134352", "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352/10/" + "A" * 3000, "too-long"),
        ("https://id.gs1.org/01/09506000134352/10/" + "A" * 1500, "gs1-malformed"),
        ("https://id.gs1.org/01/09506000134352\x1b[2J", "control-characters"),
        ("javascript://id.gs1.org/01/09506000134352", "scheme-not-allowed"),
    ],
)
def test_hostile_digital_links_are_refused_with_their_reason(uri: str, reason: str) -> None:
    v = classify(uri.encode(), POLICY, 0.0)
    assert (v.cls, v.reason) == ("rejected", reason), v


def test_gtin_functions_refuse_with_their_own_error_only() -> None:
    for bad in (
        "",
        "0",
        "x" * 100,
        "1" * 10_000,
        "\u0664\u0660\u0660\u0666\u0663\u0668\u0661\u0663\u0663\u0663\u0669\u0663\u0661",
    ):
        with pytest.raises(gtin.GtinError):
            gtin.gtin14(bad)
    with pytest.raises(gtin.GtinError, match="not a retail barcode"):
        gtin.from_barcode("4006381333931", "QRCode")
    assert gtin.check_digit("400638133393") == "1"
    assert gtin.check_digit("0950600013435") == "2"


def test_a_qr_code_of_digits_stays_text_and_an_ordinary_link_stays_a_link() -> None:
    assert classify(b"4006381333931", POLICY, 0.0).cls == "text"  # a QR code, not an EAN
    assert classify(b"https://shop.example/p/123", POLICY, 0.0).cls == "product"


def test_zbar_reads_the_same_product_frames_it_is_compared_with() -> None:
    """The frames the benchmark compares decoders on are real barcodes zbar reads too."""
    frames = variant_set("ean13", 4, seed=SEED)
    read = sum(bool(pyzbar.decode(to_grey(f.image))) for f in frames)
    assert read >= 3


@pytest.mark.parametrize(
    "uri", ["HTTP://[", "https://[::1/01/09506000134352", "https://[::1]/01/09506000134352"]
)
def test_uris_urllib_cannot_split_are_refused_not_raised(uri: str) -> None:
    assert classify(uri.encode(), POLICY, 0.0).cls == "rejected"


_SEGMENT = st.text("0123456789AZaz%/-._~!*'()=&?#:@[] \x00\u00e9", max_size=24)


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.builds(
            lambda host, path, rest: f"https://{host}/{path}/01/{rest}",
            st.from_regex(r"[a-z0-9.-]{0,20}", fullmatch=True),
            _SEGMENT,
            _SEGMENT,
        ),
        st.builds(lambda rest: "https://id.gs1.org/01/09506000134352" + rest, _SEGMENT),
        st.text(max_size=60),
    ),
    st.sampled_from(["QRCode", "EAN13", "UPCA", "EAN8"]),
)
def test_fuzz_product_codes_get_a_verdict_never_a_traceback(text: str, kind: str) -> None:
    v = classify(text.encode("utf-8", "surrogatepass"), POLICY, 0.0, text=text, kind=kind)
    if v.cls == "gtin":
        gtin_ = str(v.detail["gtin"])
        assert len(gtin_) == 14 and gtin.check_digit(gtin_[:-1]) == gtin_[-1]
    else:
        assert v.cls != "rejected" or v.reason
