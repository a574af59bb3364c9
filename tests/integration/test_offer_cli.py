"""`o2o-edge qr make --offer` and `o2o-edge pos token` from the command line: an offer code
printed as a PNG reads back as an offer with the device's keys, and as an unknown key or
another store's without them; every bad argument is one line and exit 2."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from tests.conftest import CLI, ROOT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_offer_codes_made_printed_and_read_back(tmp_path: Path) -> None:
    key = tmp_path / "offers.pem"
    res = cli("qr", "keygen", str(key))
    public = re.search(r'\["([0-9a-f]{64})"\]', res.stdout)
    assert res.returncode == 0 and public
    res = cli("qr", "make", "--offer", "C-0042", "--key", str(key), "--campaign", "spring",
              "--text", "coffee-20", "--store", "store-1,store-2", "--valid", "2d",
              "--out", str(tmp_path / "offer.png"))
    assert res.returncode == 0 and res.stdout.startswith("O2OF1:")

    def read(store: str, keys: str) -> tuple[str, str | None]:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[device]\nstore = "{store}"\n[qr]\noffer_public_keys = [{keys}]\n')
        res = cli("decode", "qr", str(tmp_path / "offer.png"), "--config", str(cfg))
        code = json.loads(res.stdout)["codes"][0]
        return code["class"], code["reason"]

    assert read("store-2", f'"{public.group(1)}"') == ("offer", None)
    assert read("store-9", f'"{public.group(1)}"') == ("rejected", "offer-other-store")
    assert read("store-1", "") == ("rejected", "offer-unknown-key")
    for bad, says in ((["--offer", "C 1", "--key", str(key), "--campaign", "c", "--text", "t"],
                       "code id"),
                      (["--offer", "C-1", "--key", str(key)], "needs --key"),
                      (["--offer", "C-1", "--key", str(key), "--campaign", "c", "--text",
                        "Coffee!"], "offer text id"),
                      (["--offer", "C-1", "--key", str(key), "--campaign", "c", "--text", "t",
                        "--store", "a b"], "store id"),
                      (["--offer", "C-1", "--key", str(tmp_path / "none.pem"), "--campaign",
                        "c", "--text", "t"], "none.pem")):
        res = cli("qr", "make", *bad)
        assert res.returncode == 2 and says in res.stderr and res.stderr.count("\n") == 1, bad


def test_a_tills_token_and_its_entry(tmp_path: Path) -> None:
    res = cli("pos", "token", "till-1")
    assert res.returncode == 0
    token = res.stderr.strip().rsplit(" ", 1)[1]
    entry = re.fullmatch(r'add to \[pos\] tokens: "till-1=([0-9a-f]{64})"\n', res.stdout)
    assert entry and entry.group(1) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in res.stdout  # only the digest goes into the configuration
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[pos]\nenabled = true\ntokens = ["till-1={entry.group(1)}"]\n')
    assert cli("config", "check", "--config", str(cfg)).returncode == 0
    cfg.write_text('[pos]\ntokens = ["till-1=secret"]\n')
    res = cli("config", "check", "--config", str(cfg))
    assert res.returncode == 2 and "o2o-edge pos token NAME" in res.stderr
    bad = cli("pos", "token", "Till One")
    assert bad.returncode == 2 and "lowercase" in bad.stderr
