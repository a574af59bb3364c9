"""Configuration: TOML file, environment overrides, built-in defaults, strict validation.

Lookup order for the file: ``--config PATH``, ``$O2O_EDGE_CONFIG``, ``/etc/o2o-edge/config.toml``,
else the built-in defaults alone. Every key of every section can be overridden from the
environment as ``O2O_EDGE_<SECTION>_<KEY>`` (``O2O_EDGE_MQTT_URL``). Unknown keys, wrong types and
bad values are errors that name the file (or variable), the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from agent.config_checks import CHECKS, check_file_paths
from agent.config_values import coerce, from_env, generic_problem, read_toml
from agent.errors import ConfigError
from agent.rundir import runtime_dir

SYSTEM_CONFIG = Path("/etc/o2o-edge/config.toml")
ENV_CONFIG = "O2O_EDGE_CONFIG"
ENV_PREFIX = "O2O_EDGE_"
SECRET_KEYS = frozenset({"password"})
# sockaddr_un.sun_path holds 108 bytes with its terminating NUL: a longer socket path fails
# at bind() only, deep in the agent's start
MAX_SOCKET_PATH: Final = 107


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "o2o-edge"


def _runtime_dir() -> Path:
    return runtime_dir()  # per user and checked when it is under /tmp (agent/rundir.py)


def _default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64].strip("-.")
    return host or "edge-0"


@dataclass(frozen=True)
class DeviceConfig:
    store: str = "demo-store"
    id: str = dataclasses.field(default_factory=_default_device_id)


@dataclass(frozen=True)
class OutboxConfig:
    path: Path = dataclasses.field(default_factory=lambda: _state_dir() / "outbox.db")
    max_bytes: int = 256 * 1024 * 1024
    ttl_days: float = 14.0
    group_commit_ms: int = 50
    reserve_mb: int = 8  # disk space held back for a full disk (0: none)


@dataclass(frozen=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    protocol: str = "5"
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    allow_insecure: bool = False
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    batch_max_events: int = 500
    batch_max_bytes: int = 128 * 1024
    inflight_window: int = 16
    ack_timeout_s: float = 60.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 60.0


@dataclass(frozen=True)
class BleConfig:
    enabled: bool = False
    adapter: str = ""
    mode: str = "auto"
    replay: str = ""  # a capture file to replay instead of scanning (simulated store)
    replay_speed: float = 1.0
    watchdog_s: float = 60.0
    # the store's own beacons: "ibeacon:<uuid>:<major>:<minor>", "eddystone-uid:<ns>:<inst>",
    # "altbeacon:<beacon id>"; their presence, health and silence are reported
    beacons: list[str] = dataclasses.field(default_factory=list)
    # iBeacon proximity UUIDs advertised by the opted-in shopper app
    app_uuids: list[str] = dataclasses.field(default_factory=list)
    path_loss_exponent: float = 2.0
    # proximity zones: immediate < immediate_m <= near < near_m <= far; leaving a zone needs
    # the distance to pass its bound by zone_margin (0.2 = 20 %) for zone_hold_s seconds,
    # so a shopper standing on a boundary does not flap between zones
    immediate_m: float = 0.5
    near_m: float = 3.0
    zone_margin: float = 0.2
    zone_hold_s: float = 3.0
    health_interval_s: float = 300.0
    silent_after_s: float = 300.0
    low_battery_mv: int = 2500


@dataclass(frozen=True)
class QrConfig:
    enabled: bool = False
    # a V4L2 camera by index ("0") or path ("/dev/video0"), or a video file / PNG sequence
    # ("frames_%04d.png") for the simulated store
    camera: str = "0"
    roi: str = ""  # "x,y,width,height" in camera pixels: only this part is searched
    max_width: int = 1280  # larger frames are scaled down before decoding (0: never)
    fps_limit: float = 0.0  # pace a file to this rate (a camera paces itself)
    loop: bool = False  # replay a file from the start when it ends
    decoder: str = "robust"  # robust (zxing-cpp with retries), zxing, zbar, opencv
    # link domains a QR code may send a shopper to (subdomains included); others are rejected
    domains: list[str] = dataclasses.field(default_factory=list)
    product_paths: list[str] = dataclasses.field(
        default_factory=lambda: ["/p/", "/product/", "/products/"])
    loyalty_pattern: str = "LOY[0-9]{8,16}"
    # Ed25519 public keys (raw 32 bytes, hex or base64) that sign pickup codes
    pickup_public_keys: list[str] = dataclasses.field(default_factory=list)
    debounce_s: float = 3.0  # the same code again within this time is the same scan


@dataclass(frozen=True)
class NfcConfig:
    enabled: bool = False
    # usb, usb:VVVV:PPPP, usb:BUS:DEV, tty:USB0:pn532, or udp:HOST:PORT (the simulator)
    reader: str = "usb"
    targets: list[str] = dataclasses.field(default_factory=lambda: ["106A", "212F"])
    debounce_s: float = 1.0  # a tag back within this time of leaving is the same tap
    # tags whose UID may appear in events: "UIDHEX" or "UIDHEX=label"; any other UID is
    # replaced by a keyed hash under a salt that changes every UTC day
    shelf_tags: list[str] = dataclasses.field(default_factory=list)
    loyalty_cards: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class KioskConfig:
    # orders, appointments and loyalty cards that check-in is answered from
    store_db: Path = dataclasses.field(default_factory=lambda: _state_dir() / "store.db")
    content_dir: str = ""  # the content bundle; "" = the built-in sample
    language: str = "en"  # the language a fresh session starts in
    idle_s: float = 45.0  # no touch for this long: the session is wiped
    idle_warning_s: float = 15.0  # "Are you still there?" shown this long before
    early_checkin_min: float = 30.0  # appointment check-in opens this many minutes before
    staff_pin_hash: str = ""  # from 'o2o-edge kiosk pin'; "" = staff mode closed
    serve: str = "127.0.0.1:8765"  # where 'o2o-edge kiosk --serve' listens by default
    # browser sessions 'kiosk --serve' runs at once, each a kiosk process of ~47 MiB: a
    # screen needs one, two while its page reloads; more are refused
    serve_sessions: int = 2
    # the served page's text size against its own choice from the screen (1.0): 1.25 is a
    # quarter larger (fewer, bigger cells), 0.8 smaller; 0.5 to 2
    scale: float = 1.0


@dataclass(frozen=True)
class LinkConfig:
    # Ed25519 public keys (hex or base64) that sign documents from upstream; none = the
    # agent takes no documents (orders, content, config) from the broker
    public_keys: list[str] = dataclasses.field(default_factory=list)
    # a remote config runs on trial after the restart that applies it: without an uplink
    # connection within this time it is rolled back
    config_trial_s: float = 60.0


@dataclass(frozen=True)
class PrivacyConfig:
    # orders, appointments, loyalty cards and KPI roll-ups older than this are deleted
    retention_days: float = 90.0


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"  # Prometheus metrics; "" turns the endpoint off
    telemetry_interval_s: float = 60.0  # health on MQTT …/telemetry; 0 turns it off


@dataclass(frozen=True)
class BusConfig:
    socket: Path = dataclasses.field(default_factory=lambda: _runtime_dir() / "agent.sock")


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    outbox: OutboxConfig = dataclasses.field(default_factory=OutboxConfig)
    mqtt: MqttConfig = dataclasses.field(default_factory=MqttConfig)
    bus: BusConfig = dataclasses.field(default_factory=BusConfig)
    ble: BleConfig = dataclasses.field(default_factory=BleConfig)
    qr: QrConfig = dataclasses.field(default_factory=QrConfig)
    nfc: NfcConfig = dataclasses.field(default_factory=NfcConfig)
    kiosk: KioskConfig = dataclasses.field(default_factory=KioskConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    link: LinkConfig = dataclasses.field(default_factory=LinkConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    source: str = "built-in defaults"
    path: str = ""  # the file it came from ("" for the built-in defaults)
    remote_version: int | None = None  # the remote overlay's version, when one is applied

    @property
    def topic_base(self) -> str:
        return f"o2o/v1/{self.device.store}/{self.device.id}"


_SECTIONS: dict[str, type[Any]] = {
    "device": DeviceConfig,
    "outbox": OutboxConfig,
    "mqtt": MqttConfig,
    "bus": BusConfig,
    "ble": BleConfig,
    "qr": QrConfig,
    "nfc": NfcConfig,
    "kiosk": KioskConfig,
    "metrics": MetricsConfig,
    "link": LinkConfig,
    "privacy": PrivacyConfig,
}



def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path,
             "list[str]": list}
    return {f.name: hints[str(f.type)] for f in dataclasses.fields(cls)}


def _build_section(
    name: str, table: Mapping[str, Any], origin: str, env: Mapping[str, str]
) -> Any:
    cls = _SECTIONS[name]
    types = _field_types(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in types:
            allowed = ", ".join(sorted(types))
            raise ConfigError(f"{origin}: unknown key [{name}] {key!r}; allowed keys: {allowed}")
        values[key] = coerce(value, types[key], f"{origin}: [{name}] {key}")
    for key, ftype in types.items():
        var = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
        if var in env:
            values[key] = from_env(env[var], ftype, f"environment {var}")
    section = cls(**values)
    for key in types:
        value = getattr(section, key)
        problem = generic_problem(value)
        if problem is None and (check := CHECKS.get((name, key))) is not None:
            problem = check(value)
        if problem:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise ConfigError(f"{origin}: [{name}] {key} = {shown} is not allowed; use {problem}")
    return section


def is_loopback(host: str) -> bool:
    """Plaintext MQTT is allowed without [mqtt] allow_insecure only to these hosts."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cross_checks(cfg: Config) -> None:
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
    if len(bytes(cfg.bus.socket)) > MAX_SOCKET_PATH:
        raise ConfigError(f"{cfg.source}: [bus] socket {str(cfg.bus.socket)!r} is longer than "
                          f"{MAX_SOCKET_PATH} bytes (a limit of Unix sockets); choose a shorter "
                          "path")
    problem = check_file_paths(cfg.path, {"[outbox] path": cfg.outbox.path,
                                          "[kiosk] store_db": cfg.kiosk.store_db},
                               {"[bus] socket": cfg.bus.socket})
    if problem:
        raise ConfigError(f"{cfg.source}: {problem}")
    if m.backoff_max_s < m.backoff_min_s:
        raise ConfigError(f"{cfg.source}: [mqtt] backoff_max_s must be >= backoff_min_s")
    if cfg.kiosk.idle_warning_s >= cfg.kiosk.idle_s:
        raise ConfigError(f"{cfg.source}: [kiosk] idle_warning_s must be less than idle_s")
    if not 0.5 <= cfg.kiosk.scale <= 2.0:
        raise ConfigError(f"{cfg.source}: [kiosk] scale must be from 0.5 to 2 (1.0: the text "
                          "size the kiosk picks for the screen)")
    if cfg.ble.near_m <= cfg.ble.immediate_m:
        raise ConfigError(f"{cfg.source}: [ble] near_m must be greater than immediate_m")


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return None


REMOTE_SECTIONS = frozenset({"mqtt", "ble", "qr", "nfc", "kiosk", "metrics", "privacy"})


def remote_config_paths() -> tuple[Path, Path]:
    """(applied, pending) remote configuration overlays, in the agent's state directory."""
    base = _state_dir()
    return base / "remote-config.json", base / "remote-config.pending.json"


def read_overlay(path: Path) -> tuple[int, dict[str, dict[str, Any]]] | None:
    try:
        doc = json.loads(path.read_text())
        return int(doc["version"]), dict(doc["sections"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def merge_overlay(doc: dict[str, Any], sections: Mapping[str, Any]) -> dict[str, Any]:
    """The file's document with remote sections laid over it, key by key; the device's
    identity, the outbox and the bus stay as the file says."""
    merged = {name: dict(value) if isinstance(value, dict) else value
              for name, value in doc.items()}
    for name, values in sections.items():
        if name not in REMOTE_SECTIONS:
            raise ConfigError(f"remote config: [{name}] cannot be set remotely; allowed: "
                              + ", ".join(sorted(REMOTE_SECTIONS)))
        if not isinstance(values, dict):
            raise ConfigError(f"remote config: {name} must be a table")
        merged.setdefault(name, {}).update(values)
    return merged


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None,
                overlay: tuple[int, Mapping[str, Any]] | None = None) -> Config:
    """Load and validate the configuration (with a remote overlay laid over it when given);
    raises ConfigError saying what to fix."""
    env = os.environ if env is None else env
    path = find_config_file(explicit, env)
    doc: dict[str, Any] = {}
    origin = "built-in defaults"
    if path is not None:
        origin = str(path)
        doc = read_toml(path)
    if overlay is not None:
        doc = merge_overlay(doc, overlay[1])
        origin += f" + remote config v{overlay[0]}"
    for name, value in doc.items():
        if name not in _SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in _SECTIONS)
            raise ConfigError(f"{origin}: unknown section [{name}]; allowed sections: {allowed}")
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {name} must be a table ([{name}])")
    sections = {name: _build_section(name, doc.get(name, {}), origin, env) for name in _SECTIONS}
    cfg = Config(source=origin, path=str(path) if path else "",
                 remote_version=overlay[0] if overlay else None, **sections)
    _cross_checks(cfg)
    return cfg


def config_as_dict(cfg: Config, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in _SECTIONS:
        section = getattr(cfg, name)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            if isinstance(v, Path):
                v = str(v)
            if mask_secrets and f.name in SECRET_KEYS and v:
                v = "********"
            values[f.name] = v
        out[name] = values
    if mask_secrets:
        parts = urlsplit(cfg.mqtt.url)
        if parts.password:
            out["mqtt"]["url"] = cfg.mqtt.url.replace(f":{parts.password}@", ":********@")
    return out


def render_toml(cfg: Config) -> str:
    """The effective configuration as TOML, secrets masked."""
    lines = [f"# effective configuration (from {cfg.source})"]
    for name, values in config_as_dict(cfg).items():
        lines.append(f"\n[{name}]")
        for key, v in values.items():
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, list):
                text = "[" + ", ".join('"' + str(x) + '"' for x in v) + "]"
            elif isinstance(v, int | float):
                text = repr(v)
            else:
                text = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
