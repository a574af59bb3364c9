"""`python -m simulators.pos`: a till replaying a receipts file into an endpoint over real
HTTP, one JSON line per answer; the token from a file, never the command line; a missing
token or an endpoint nobody serves is one line on stderr, exit 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from simulators.pos import main
from tests.abuse.test_pos_endpoint import SALE, TOKEN, endpoint


def test_a_receipts_file_is_replayed_with_the_tills_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text("\n".join(json.dumps(x) for x in (
        {"at": 0, "action": "sale", "request": SALE},
        {"at": 0.1, "action": "sale", "request": SALE},  # resent
        {"at": 0.2, "action": "sale", "request": {**SALE, "total": "12.50", "receipt": "R-2"}},
    )) + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")

    async def run() -> int:
        ep, _ = endpoint(tmp_path)
        await ep.start()
        try:
            return await asyncio.to_thread(main, [
                str(receipts), "--url", f"http://127.0.0.1:{ep.bound[0][1]}",
                "--token-file", str(tmp_path / "token"), "--speed", "10"])
        finally:
            await ep.stop()

    assert asyncio.run(run()) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["status"], x["replayed"]) for x in lines] == [(200, False), (200, True),
                                                              (422, False)]
    assert lines[2]["body"]["errors"][0]["field"] == "total"


def test_no_token_or_no_endpoint_is_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("O2O_TILL_TOKEN", raising=False)
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text(json.dumps({"at": 0, "action": "sale", "request": SALE}) + "\n")
    assert main([str(receipts)]) == 2
    assert capsys.readouterr().err.strip().endswith("--token-file FILE or O2O_TILL_TOKEN")
    monkeypatch.setenv("O2O_TILL_TOKEN", TOKEN)
    assert main([str(receipts), "--url", "http://127.0.0.1:9"]) == 2  # nobody serves there
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
