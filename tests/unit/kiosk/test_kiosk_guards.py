"""The kiosk's guards as pure logic: `--serve` addresses, the staff PIN's count shared
through its state file, device health lines from a status with hostile values."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from kiosk.i18n import Translator, load_catalogues
from kiosk.pin import LOCK_S, MAX_TRIES, PinGate, hash_pin
from kiosk.screens.staff import health_lines
from kiosk.serve import ServeError, parse_listen
from kiosk.state import state_dir

STORED = hash_pin("2468")


@pytest.mark.parametrize(("where", "parsed"), [
    ("127.0.0.1:8765", ("127.0.0.1", 8765)), ("[::1]:8765", ("::1", 8765)),
    ("localhost:0", ("localhost", 0)), ("kiosk.lan:80", ("kiosk.lan", 80))])
def test_serve_addresses(where: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(where) == parsed


@pytest.mark.parametrize("where", ["127.0.0.1", ":", ":8765", "host:notaport", "h:99999",
                                   "h:-1", "h:٣", "[::1:80", "a b:80", "h/x:80", ""])
def test_serve_addresses_that_are_none(where: str) -> None:
    with pytest.raises(ServeError, match=r"like 127\.0\.0\.1:8765"):
        parse_listen(where)


def test_pin_tries_are_shared_through_the_state_file(tmp_path: Path) -> None:
    now = [100.0]
    state = tmp_path / "pin-tries.json"
    gates = [PinGate(STORED, lambda: now[0], state) for _ in range(MAX_TRIES + 1)]
    for gate in gates[:MAX_TRIES]:  # one wrong PIN each, as from separate sessions
        assert not gate.check("0000")
    assert gates[-1].locked_for() == LOCK_S and not gates[-1].check("2468")
    now[0] += LOCK_S + 1
    assert gates[0].check("2468") and gates[-1].tries_left() == MAX_TRIES


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"failures": "x"}',
                                    '{"failures": 0, "lockouts": 0, "locked_until": NaN}',
                                    '{"failures": -3, "lockouts": 0, "locked_until": 0}'])
def test_a_damaged_state_file_locks_for_one_period_not_for_good(
        tmp_path: Path, damage: str) -> None:
    now = [100.0]
    state = tmp_path / "pin-tries.json"
    state.write_text(damage)
    gate = PinGate(STORED, lambda: now[0], state)
    assert gate.locked_for() == LOCK_S and not gate.check("2468")
    # a stored time far in the future (another boot's clock) holds one period at most
    state.write_text(json.dumps({"failures": 0, "lockouts": 1, "locked_until": 1e18}))
    assert gate.locked_for() == LOCK_S
    now[0] += LOCK_S * 2
    state.write_text(json.dumps({"failures": 0, "lockouts": 1, "locked_until": 0}))
    assert gate.check("2468")


def test_the_state_directory_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    got = state_dir()
    assert got == tmp_path / "state" / "o2o-edge-kiosk" and got.stat().st_mode & 0o777 == 0o700
    # a folder others may write to is not used: the next private place is
    got.chmod(0o777)
    other = state_dir()
    assert other == tmp_path / "tmp" / f"o2o-edge-kiosk-{os.getuid()}"
    assert other.stat().st_mode & 0o077 == 0


def test_health_lines_show_status_values_as_data() -> None:
    lines = health_lines({"uplink": {"state": "[/]", "url": "mqtt://[@click=app.quit]\x1b[2J"},
                          "outbox": {"depth": "x" * 5000, "oldest_age_s": float("inf")},
                          "nfc": {"reader": {"state": "ok", "recent_errors": "[/]"}},
                          "ble": "broken", "qr": {"camera": []}},
                         Translator(load_catalogues()))
    assert lines[0] == "uplink: [/]  mqtt://[@click=app.quit][2J"
    assert lines[1].endswith("…") and len(lines[1]) <= 300
    assert lines[2:] == ["BLE scanner: None", "NFC reader: ok", "camera: None"]
