"""`o2o-edge sign` as upstream tooling uses it: the key from `qr keygen`, a body from a file
or stdin, a JWS on stdout that a device trusting the printed public key applies; every
mistake one line and exit 2."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.keys import parse_public_key
from agent.storelink.docs import key_id, verify

BODY = {
    "mode": "snapshot",
    "rows": [{"order_id": "A-1", "code": "K7Q2M9", "first_name": "Zo\u00eb", "status": "ready"}],
}


@pytest.fixture
def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "link.pem"
    assert main(["qr", "keygen", str(path)]) == 0
    capsys.readouterr()
    return path


def test_what_it_signs_a_device_applies(
    key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["sign", "--key", str(key), "--public-key"]) == 0
    line = capsys.readouterr().out
    public = parse_public_key(line.split('"')[1])
    assert line.startswith('public_keys = ["') and key_id(public) in line
    body = tmp_path / "orders.json"
    body.write_text(json.dumps(BODY))
    assert (
        main(
            [
                "sign",
                "--key",
                str(key),
                "--kind",
                "orders",
                "--store",
                "berlin-01",
                "--doc-version",
                "7",
                str(body),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count(".") == 2  # one compact JWS, one line
    doc = verify(
        out.strip().encode(), {key_id(public): public}, "berlin-01", "pi-1", time.time(), {}
    )
    assert (doc.kind, doc.device, doc.version, doc.body) == ("orders", "all", 7, BODY)
    assert 86000 < doc.expires - doc.issued <= 86400
    # a command for one device, its body from stdin
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"name": "ping", "args": {}}')))
    assert (
        main(
            [
                "sign",
                "--key",
                str(key),
                "--kind",
                "cmd",
                "--store",
                "berlin-01",
                "--device",
                "pi-1",
                "--doc-version",
                "1",
                "--valid",
                "10m",
            ]
        )
        == 0
    )
    doc = verify(
        capsys.readouterr().out.strip().encode(),
        {key_id(public): public},
        "berlin-01",
        "pi-1",
        time.time(),
        {},
    )
    assert doc.body == {"name": "ping", "args": {}} and doc.expires - doc.issued == 600


@pytest.mark.parametrize(
    ("args", "body", "says"),
    [
        ([], "{}", "--kind, --store, --doc-version needed (or --public-key)"),
        (["--kind", "order", "--store", "s", "--doc-version", "1"], "{}", "--kind is one of"),
        (["--kind", "orders", "--store", "s/1", "--doc-version", "1"], "{}", "--store 's/1': 1-64"),
        (
            ["--kind", "orders", "--store", "s", "--device", "a b", "--doc-version", "1"],
            "{}",
            "--device 'a b'",
        ),
        (["--kind", "orders", "--store", "s", "--doc-version", "-1"], "{}", "--doc-version is 0"),
        (
            ["--kind", "orders", "--store", "s", "--doc-version", "1", "--valid", "9y"],
            "{}",
            "a duration like 30m",
        ),
        (
            ["--kind", "orders", "--store", "s", "--doc-version", "1"],
            '{"a": 1, "a": 2}',
            "member 'a' given twice",
        ),
        (["--kind", "orders", "--store", "s", "--doc-version", "1"], "{nope", "body is not JSON"),
        (
            ["--kind", "orders", "--store", "s", "--doc-version", "1", "missing.json"],
            None,
            "missing.json: cannot be read",
        ),
    ],
    ids=[
        "nothing",
        "kind",
        "store",
        "device",
        "version",
        "valid",
        "duplicate",
        "not-json",
        "no-file",
    ],
)
def test_each_mistake_is_one_line(
    key: Path,
    tmp_path: Path,
    args: list[str],
    body: str | None,
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO((body or "").encode())))
    assert main(["sign", "--key", str(key), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("o2o-edge sign: ") and says in captured.err


def test_a_missing_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "--key", str(tmp_path / "none.pem"), "--public-key"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"o2o-edge sign: {tmp_path / 'none.pem'}: no such file; give the key file "
        "that 'o2o-edge qr keygen' wrote\n"
    )
