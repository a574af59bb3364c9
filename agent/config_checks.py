"""Checks of the configuration: what each value may be (CHECKS, each returning what is
allowed, or None), and what the values of a whole `Config` must be together (cross_checks).

Every pattern is used with fullmatch: "$" also matches before a trailing newline, so a
`^...$` match let "dev-1\\n" through into topics and paths.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from agent.config_schema import Config
from agent.contracts.alerts import DIGEST_PATTERN
from agent.contracts.settings_values import Check
from agent.contracts.settings_values import check_number as check_number
from agent.contracts.settings_values import check_text as check_text
from agent.contracts.shared_settings import SHARED_CHECKS, is_hostport, shared_problem
from agent.errors import ConfigError

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BEACON_ID_RE = re.compile(
    r"(ibeacon:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:\d{1,5}:\d{1,5}"
    r"|eddystone-uid:[0-9a-f]{20}:[0-9a-f]{12}|altbeacon:[0-9a-f]{40})"
)


def _check_uuids(values: list[str]) -> str | None:
    for v in values:
        if not _UUID_RE.fullmatch(v):
            return f"lowercase UUIDs like 'b9407f30-f5f8-466e-aff9-25556b57fe6d' ({v!r} is not one)"
    return None


def _check_beacon_ids(values: list[str]) -> str | None:
    for v in values:
        if not _BEACON_ID_RE.fullmatch(v):
            return ("'ibeacon:<uuid>:<major>:<minor>', 'eddystone-uid:<20 hex>:<12 hex>' or "
                    f"'altbeacon:<40 hex>', lowercase ({v!r} is not one)")
    return None


def _check_domains(values: list[str]) -> str | None:
    for v in values:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", v):
            return f"lowercase ASCII domain names like 'shop.example' ({v!r} is not one)"
    return None


def _check_pattern(v: str) -> str | None:
    try:
        re.compile(v)
    except re.error as exc:
        return f"a regular expression ({exc})"
    return None


def _check_public_keys(values: list[str]) -> str | None:
    # cryptography loads only for a file that lists keys: every command reads the config
    from agent.keys import parse_public_key

    for v in values:
        try:
            parse_public_key(v)
        except ValueError as exc:
            return str(exc)
    return None


_UID_ENTRY_RE = re.compile(r"(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{14}|[0-9a-fA-F]{16}|[0-9a-fA-F]{20})"
                           r"(?:=[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63})?")
NFC_TARGETS = ("106A", "106B", "212F", "424F")


def _check_uid_entries(values: list[str]) -> str | None:
    for v in values:
        if not _UID_ENTRY_RE.fullmatch(v):
            return ("a tag UID in hex (4, 7, 8 or 10 bytes), optionally '=label', like "
                    f"'04a1b2c3d4e5f6=aisle-3-coffee' ({v!r} is not one)")
    return None


def _check_targets(values: list[str]) -> str | None:
    if not values or any(v not in NFC_TARGETS for v in values):
        return f"a non-empty list of {', '.join(NFC_TARGETS)}"
    return None

_POS_TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}=[0-9a-f]{64}")


def _check_pos_tokens(values: list[str]) -> str | None:
    names = [v.partition("=")[0] for v in values]
    for v in values:
        if not _POS_TOKEN_RE.fullmatch(v):
            return ("'NAME=SHA256HEX' entries as 'o2o-edge pos token NAME' prints them "
                    f"({v[:24]!r}... is not one)")
    if len(set(names)) != len(names):
        return "each till's name once"
    return None


# Upper bounds on durations and sizes: a value past them is a typo, and some end in an
# OverflowError deep inside (threading's wait() refuses timeouts above ~9.2e9 s; MQTT's session
# expiry is a 4-byte property; a packet cannot exceed 256 MiB).
DAY_S: Final = 86400.0
MQTT_MAX_PACKET: Final = 268_435_455  # the largest packet MQTT's variable-length header allows
MQTT_MAX_EXPIRY: Final = 0xFFFF_FFFF  # SessionExpiryInterval is a four-byte integer
def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _between(lo: float, hi: float, unit: str = "") -> Check:
    shown = f"{_num(lo)} to {_num(hi)}" + (f" {unit}" if unit else "")
    return lambda v: None if lo <= v <= hi else shown


def _above(lo: float, hi: float, unit: str = "seconds") -> Check:
    """Greater than lo, up to hi."""
    shown = f"more than {_num(lo)} and at most {_num(hi)} {unit}"
    return lambda v: None if lo < v <= hi else shown


def _check_protocol(v: Any) -> str | None:
    return None if v in ("5", "3.1.1") else '"5" or "3.1.1"'


def _port_ok(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _check_url(v: Any) -> str | None:
    if v == "":
        return None  # uplink disabled: events stay buffered
    parts = urlsplit(v)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        return '"mqtt://HOST:PORT" or "mqtts://HOST:PORT" (or "" to disable the uplink)'
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        return '"mqtt://HOST:PORT" or "mqtts://HOST:PORT" with a port between 1 and 65535'
    return None


CHECKS: Final[dict[tuple[str, str], Check]] = {
    **SHARED_CHECKS,
    ("outbox", "max_bytes"): lambda v: None if 2**20 <= v <= 2**40 else
    "at least 1048576 (1 MiB) and at most 1099511627776 (1 TiB)",
    ("outbox", "ttl_days"): _above(0, 3650, "days"),
    ("outbox", "reserve_mb"): lambda v: None if 0 <= v <= 1024 else "0 (none) to 1024 MiB",
    ("outbox", "group_commit_ms"): lambda v: None if 0 <= v <= 1000 else "0 to 1000",
    ("mqtt", "url"): _check_url,
    ("mqtt", "protocol"): _check_protocol,
    ("mqtt", "keepalive_s"): lambda v: None if 5 <= v <= 65535 else "5 to 65535",
    ("mqtt", "session_expiry_s"): _between(0, MQTT_MAX_EXPIRY, "seconds"),
    ("mqtt", "batch_max_events"): lambda v: None if 1 <= v <= 10000 else "1 to 10000",
    ("mqtt", "batch_max_bytes"): _between(1024, MQTT_MAX_PACKET, "bytes"),
    ("mqtt", "inflight_window"): lambda v: None if 1 <= v <= 1000 else "1 to 1000",
    ("mqtt", "ack_timeout_s"): lambda v: None if 1 <= v <= 3600 else "1 to 3600",
    ("mqtt", "backoff_min_s"): _above(0, DAY_S),
    ("mqtt", "renew_before_days"): _between(0, 3650, "days (0: the agent does not renew)"),
    ("mqtt", "backoff_max_s"): _above(0, DAY_S),
    ("ble", "mode"): lambda v: None if v in ("auto", "active", "passive") else
    '"auto", "active" or "passive"',
    ("ble", "replay_speed"): _between(0, 1e6),
    ("ble", "watchdog_s"): _above(0, DAY_S),
    ("ble", "path_loss_exponent"): lambda v: None if 1.0 <= v <= 6.0 else "1.0 to 6.0",
    ("ble", "immediate_m"): _above(0, 1000, "metres"),
    ("ble", "near_m"): _above(0, 1000, "metres"),
    ("ble", "zone_margin"): lambda v: None if 0 <= v < 1 else "0 to 0.99",
    ("ble", "zone_hold_s"): _between(0, DAY_S, "seconds"),
    ("ble", "health_interval_s"): _above(0, DAY_S),
    ("ble", "silent_after_s"): _above(0, 30 * DAY_S),
    ("ble", "low_battery_mv"): _between(0, 10000, "mV"),
    ("ble", "beacons"): lambda v: _check_beacon_ids(v),
    ("ble", "app_uuids"): lambda v: _check_uuids(v),
    ("qr", "decoder"): lambda v: None if v in ("robust", "zxing", "zbar", "opencv") else
    '"robust", "zxing", "zbar" or "opencv"',
    ("qr", "domains"): _check_domains,
    ("qr", "loyalty_pattern"): _check_pattern,
    ("qr", "pickup_public_keys"): _check_public_keys,
    ("qr", "offer_public_keys"): _check_public_keys,
    ("qr", "debounce_s"): _between(0, DAY_S, "seconds"),
    ("qr", "roi"): lambda v: None if v == "" or re.fullmatch(
        r"\d{1,5},\d{1,5},[1-9]\d{0,4},[1-9]\d{0,4}", v, re.ASCII)
    else '"" (the whole frame) or "x,y,width,height" in pixels, like "320,120,640,480"',
    ("qr", "max_width"): lambda v: None if v == 0 or 160 <= v <= 16384 else
    "0 (never) or at least 160 (at most 16384)",
    ("qr", "fps_limit"): _between(0, 1000, "frames a second"),
    ("nfc", "reader"): lambda v: None if re.fullmatch(r"(usb|tty|com|udp)(:[^\s]*)?", v) else
    '"usb", "usb:VVVV:PPPP", "usb:BUS:DEV", "tty:PORT:DRIVER" or "udp:HOST:PORT"',
    ("nfc", "targets"): _check_targets,
    ("nfc", "debounce_s"): _between(0, DAY_S, "seconds"),
    ("nfc", "shelf_tags"): _check_uid_entries,
    ("nfc", "loyalty_cards"): _check_uid_entries,
    ("link", "public_keys"): _check_public_keys,
    ("link", "config_trial_s"): lambda v: None if 5 <= v <= 3600 else "5 to 3600 seconds",
    ("privacy", "retention_days"): lambda v: None if 1 <= v <= 3650 else "1 to 3650 days",
    ("metrics", "listen"): lambda v: None if v == "" or is_hostport(v)
    else '"HOST:PORT" (keep it on 127.0.0.1), or "" to turn the endpoint off',
    ("metrics", "telemetry_interval_s"): lambda v: None if v == 0 or 5 <= v <= DAY_S else
    "0 (off) or 5 to 86400 seconds",
    ("staff", "escalate_after_s"): lambda v: None if 10 <= v <= DAY_S else
    "10 to 86400 seconds",
    ("staff", "device_down_after_s"): lambda v: None if 5 <= v <= DAY_S else
    "5 to 86400 seconds",
    ("staff", "outbox_alert_percent"): lambda v: None if 10 <= v <= 100 else "10 to 100 (%)",
    ("staff", "bus_tokens"): lambda v: None if all(DIGEST_PATTERN.fullmatch(d) for d in v)
    else "digests made by 'o2o-edge staff-view bus-token' (\"sha256$\" and 64 hex digits)",
    ("pos", "listen"): lambda v: None if v and all(is_hostport(a) for a in v) else
    'a list of "HOST:PORT" the tills reach, like ["192.168.1.20:8470"]',
    ("pos", "tokens"): _check_pos_tokens,
    ("pos", "max_body_bytes"): _between(1024, 4 * 2**20, "bytes"),
    ("pos", "rate_per_min"): _between(1, 60000, "requests a minute"),
}


# SQLite's companions of a database file: a path equal to one of them shares the database
DB_COMPANIONS: Final = ("", "-wal", "-shm", "-journal")


def check_file_paths(config_file: str, databases: Mapping[str, Path],
                     others: Mapping[str, Path]) -> str | None:
    """Database paths that would destroy something: the configuration file itself, another
    database (or its -wal/-shm), another file setting (`others`, e.g. the bus socket), or an
    existing directory. Keys are shown as "[section] key"; the text names both."""
    def real(p: Path | str) -> str:
        return os.path.realpath(os.path.expanduser(str(p)))

    taken: dict[str, str] = {}  # real path -> the setting that names it
    if config_file:
        taken[real(config_file)] = f"the configuration file {config_file}"
    for key, path in others.items():
        taken.setdefault(real(path), f"{key} = {str(path)!r}")
    for key, path in databases.items():
        base = real(path)
        if os.path.isdir(base):
            return (f"{key} = {str(path)!r} is a directory; it must name a database file "
                    "(such as outbox.db) in it")
        for suffix in DB_COMPANIONS:
            other = taken.get(base + suffix)
            if other is not None:
                what = f"{key} = {str(path)!r}" + (f" (its {suffix} file)" if suffix else "")
                return (f"{what} is the same file as {other}; each database needs a file of "
                        "its own: point it at a new file")
        for suffix in DB_COMPANIONS:
            taken[base + suffix] = f"{key} = {str(path)!r}" + (f" (its {suffix} file)"
                                                               if suffix else "")
    return None


def is_loopback(host: str) -> bool:
    """Plaintext MQTT is allowed without [mqtt] allow_insecure only to these hosts."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# What a fresh install's example file names the store until someone sets it: a device running
# under it would publish into another placeholder store's topics and stamp its events' source
# with it for good.
PLACEHOLDER_STORE: Final = "CHANGE-ME"
# Device ids the topic scheme gives a meaning of its own: o2o/v1/{store}/all/... is the whole
# store's downstream (documents, commands, their replies, content files). A device named so
# would read every device's commands as its own and answer for the whole store. Compared
# without case: "All" is a different topic level, but not to the person reading the topics.
RESERVED_DEVICE_IDS: Final = frozenset({"all"})


def identity_problems(cfg: Config) -> list[str]:
    """What keeps [device] store and id from naming this device in the fleet's topics, one
    line each saying what to set; [] when they are fine. Loading a configuration does not ask
    this (doctor, status and the kiosk still read such a file); running the agent and
    `config check` do."""
    where = f" in {cfg.path}" if cfg.path else ""
    problems = []
    if cfg.device.store.casefold() == PLACEHOLDER_STORE.casefold():
        problems.append(f"{cfg.source}: [device] store is still the placeholder "
                        f"{cfg.device.store!r}; set it to this store's name (letters, digits, "
                        f"'_', '.', '-'){where}")
    if cfg.device.id.casefold() in RESERVED_DEVICE_IDS:
        problems.append(f"{cfg.source}: [device] id {cfg.device.id!r} is reserved (topics "
                        f"under o2o/v1/{{store}}/all/ are for the whole store); give this "
                        f"device a name of its own{where}, such as 'pi-kiosk-1'")
    return problems


def cross_checks(cfg: Config) -> None:
    """What the values must be together, and the files they name; ConfigError naming the
    source and the keys otherwise."""
    m = cfg.mqtt
    if m.url:
        parts = urlsplit(m.url)
        host = parts.hostname or ""
        if parts.scheme == "mqtt" and not is_loopback(host) and not m.allow_insecure:
            raise ConfigError(
                f"{cfg.source}: [mqtt] url {m.url!r} is plaintext to a non-loopback host; use "
                "mqtts:// (with ca_file) or set [mqtt] allow_insecure = true if you really mean it"
            )
    if bool(m.cert_file) != bool(m.key_file):
        raise ConfigError(f"{cfg.source}: [mqtt] cert_file and key_file must be set together")
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(m, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"{cfg.source}: [mqtt] {key} = {path!r} does not exist")
    problem = shared_problem(cfg.kiosk, cfg.bus) or check_file_paths(
        cfg.path, {"[outbox] path": cfg.outbox.path, "[kiosk] store_db": cfg.kiosk.store_db},
        {"[bus] socket": cfg.bus.socket})
    if problem:
        raise ConfigError(f"{cfg.source}: {problem}")
    if m.backoff_max_s < m.backoff_min_s:
        raise ConfigError(f"{cfg.source}: [mqtt] backoff_max_s must be >= backoff_min_s")
    if cfg.ble.near_m <= cfg.ble.immediate_m:
        raise ConfigError(f"{cfg.source}: [ble] near_m must be greater than immediate_m")
    if cfg.pos.enabled and not cfg.pos.tokens:
        raise ConfigError(f"{cfg.source}: [pos] enabled needs at least one till in [pos] tokens "
                          "(make one with 'o2o-edge pos token NAME')")
