"""Config validation against hostile values: patterns fullmatched (a trailing newline passed
`^...$`), control characters refused in every string option (they end up in topics, paths,
log lines and headers), numbers finite and bounded; and the helpers the CLI uses to say what
is wrong with a directory or a TLS file."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config_checks import (
    CHECKS,
    _check_beacon_ids,
    _check_uid_entries,
    _check_uuids,
)
from agent.config_schema import SECTIONS
from agent.contracts.settings_values import field_types
from agent.doctor.dirs import dir_problem
from agent.errors import AgentError, ConfigError
from agent.tlsopts import client_tls_context, connect_problem

UUID = "b9407f30-f5f8-466e-aff9-25556b57fe6d"


@pytest.mark.parametrize("check, value", [
    (CHECKS[("device", "id")], "dev-1\n"),
    (CHECKS[("device", "store")], "store-1\n"),
    (_check_uuids, [UUID + "\n"]),
    (_check_beacon_ids, [f"ibeacon:{UUID}:1:2\n"]),
    (_check_uid_entries, ["04a1b2c3\n"]),
    (CHECKS[("metrics", "listen")], "127.0.0.1:9464\n"),
    (CHECKS[("kiosk", "serve")], "127.0.0.1:99999"),
    (CHECKS[("qr", "roi")], "1,2,3,\u0664"),  # an Arabic-Indic digit is \d, not a pixel
    (CHECKS[("mqtt", "url")], "mqtt://127.0.0.1:0"),
    (CHECKS[("mqtt", "session_expiry_s")], 2**32),
    (CHECKS[("mqtt", "batch_max_bytes")], 2**28),
])
def test_each_pattern_and_bound_refuses(check: object, value: object) -> None:
    assert check(value) is not None  # type: ignore[operator]


def _string_options() -> list[tuple[str, str, type]]:
    out = []
    for section, cls in SECTIONS.items():
        for key, ftype in field_types(cls).items():
            if ftype in (str, Path, list):
                out.append((section, key, ftype))
    return out


@pytest.mark.parametrize("section, key, ftype", _string_options())
@pytest.mark.parametrize("bad", ["\\n", "\\u001b[2J", "\\u007f", "\\u2028", "\\u0000"])
def test_no_string_option_takes_a_control_character(section: str, key: str, ftype: type,
                                                    bad: str, tmp_path: Path) -> None:
    text = f'"/tmp/x{bad}"' if ftype is Path else f'"a{bad}"'
    path = tmp_path / "c.toml"
    path.write_text(f"[{section}]\n{key} = {f'[{text}]' if ftype is list else text}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path), {})
    assert f"[{section}] {key}" in str(exc.value) and "control characters" in str(exc.value)


def _number_options() -> list[tuple[str, str]]:
    return [(section, key) for section, cls in SECTIONS.items()
            for key, ftype in field_types(cls).items() if ftype is float]


@pytest.mark.parametrize("section, key", _number_options())
@pytest.mark.parametrize("bad", ["inf", "nan", "-inf", "1e308"])
def test_no_number_option_takes_inf_nan_or_absurd(section: str, key: str, bad: str,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[{section}]\n{key} = {bad}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path), {})
    assert f"[{section}] {key}" in str(exc.value)


def test_the_defaults_still_pass() -> None:
    cfg = load_config(None, {})
    assert dataclasses.asdict(cfg.device)


def test_dir_problem_names_a_file_in_the_way_and_a_path_that_cannot_be_made(
        tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    p = dir_problem("[outbox] path", tmp_path / "file" / "sub")
    assert p is not None and f"{tmp_path / 'file'} is a file" in str(p)
    p = dir_problem("[outbox] path", tmp_path / "file")
    assert p is not None and "is not a directory" in str(p)
    p = dir_problem("[bus] socket", Path("/proc/o2o-edge-test/run"))
    assert p is not None and "cannot be created" in str(p)
    assert dir_problem("[outbox] path", tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()  # asking made nothing


def test_tls_files_that_are_no_certificates_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(AgentError) as exc:
        client_tls_context(str(junk))
    assert str(junk) in str(exc.value) and "CA" in str(exc.value)
    with pytest.raises(AgentError, match="client certificate"):
        client_tls_context("", str(junk), str(junk))
    with pytest.raises(AgentError, match="both"):
        client_tls_context("", str(junk), "")
    assert client_tls_context().verify_mode == ssl.CERT_REQUIRED  # the system CAs


def test_connect_problems_in_plain_words() -> None:
    import socket

    assert "is this a TLS port?" in connect_problem(ConnectionResetError(104, "reset"), True)
    assert "refused" in connect_problem(ConnectionRefusedError(111, "x"), False)
    assert "host name not found" in connect_problem(socket.gaierror(-2, "x"), False)
    assert "is this a TLS port?" in connect_problem(ssl.SSLEOFError(8, "EOF"), True)


@pytest.mark.parametrize("outbox, store_db, socket, says", [
    ("{cfg}", "{d}/store.db", "{d}/a.sock",
     "[outbox] path = '{cfg}' is the same file as the configuration file {cfg}"),
    ("{d}/outbox.db", "{cfg}", "{d}/a.sock",
     "[kiosk] store_db = '{cfg}' is the same file as the configuration file {cfg}"),
    ("{d}/x.db", "{d}/x.db", "{d}/a.sock",
     "[kiosk] store_db = '{d}/x.db' is the same file as [outbox] path = '{d}/x.db'"),
    ("{d}/x.db", "{d}/x.db-wal", "{d}/a.sock",
     "[kiosk] store_db = '{d}/x.db-wal' is the same file as [outbox] path = '{d}/x.db' "
     "(its -wal file)"),
    ("{d}/x.db-shm", "{d}/x.db", "{d}/a.sock",
     "[kiosk] store_db = '{d}/x.db' (its -shm file) is the same file as [outbox] path = "
     "'{d}/x.db-shm'"),
    ("{d}/sub/../outbox.db", "{d}/store.db", "{d}/outbox.db",
     "[outbox] path = '{d}/sub/../outbox.db' is the same file as [bus] socket = "
     "'{d}/outbox.db'"),
    ("{d}", "{d}/store.db", "{d}/a.sock", "[outbox] path = '{d}' is a directory"),
    ("{d}/outbox.db", "{d}/sub", "{d}/a.sock", "[kiosk] store_db = '{d}/sub' is a directory"),
])
def test_a_database_path_that_would_destroy_a_file_is_refused_naming_both(
        tmp_path: Path, outbox: str, store_db: str, socket: str, says: str) -> None:
    # `config check` said OK, and `run` moved the config file aside to make a database there
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "config.toml"

    def fmt(text: str) -> str:
        return text.format(d=tmp_path, cfg=cfg)
    cfg.write_text(f'[outbox]\npath = "{fmt(outbox)}"\n[kiosk]\nstore_db = "{fmt(store_db)}"\n'
                   f'[bus]\nsocket = "{fmt(socket)}"\n')
    before = cfg.read_bytes()
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg), env={})
    assert fmt(says) in str(info.value)
    assert cfg.read_bytes() == before


def test_distinct_database_paths_pass(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[outbox]\npath = "{tmp_path}/outbox.db"\n'
                   f'[kiosk]\nstore_db = "{tmp_path}/store.db"\n')
    loaded = load_config(str(cfg), env={})
    assert loaded.outbox.path == tmp_path / "outbox.db"
