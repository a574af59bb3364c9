"""The agent's configuration schema: one frozen dataclass per table of the file, each field
with its type and default, and `Config`, the tree of them. What each value may be is in
agent/config_checks.py; reading the file and the environment into it is agent/config_load.py.

[device], [bus] and [kiosk] are shared with the kiosk, which reads them without loading this
module (agent/contracts/shared_settings.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.contracts.settings_file import state_dir
from agent.contracts.shared_settings import BusConfig, DeviceConfig, KioskConfig

__all__ = ["SECTIONS", "BleConfig", "BusConfig", "Config", "DeviceConfig", "KioskConfig",
           "LinkConfig", "MetricsConfig", "MqttConfig", "NfcConfig", "OutboxConfig",
           "PosConfig", "PrivacyConfig", "QrConfig", "StaffConfig"]


@dataclass(frozen=True)
class OutboxConfig:
    path: Path = dataclasses.field(default_factory=lambda: state_dir() / "outbox.db")
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
    # the agent asks the fleet's CA for a new certificate this long before cert_file expires
    # (agent/enroll/renewal.py); 0: never, a person renews it with `o2o-edge enroll`
    renew_before_days: float = 30.0
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
    # Ed25519 public keys that sign offer codes (agent/pos/, drivers/qr/offer.py)
    offer_public_keys: list[str] = dataclasses.field(default_factory=list)
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
class StaffConfig:
    # staff alerts (agent/services/alerts.py): an alert nobody acknowledged escalates this
    # often (louder, to everyone), up to agent/contracts/alerts.py MAX_LEVEL
    escalate_after_s: float = 120.0
    # a reader, the camera or another component failing this long is a "device down" alert
    # (a restart that comes back within it is not worth a walk)
    device_down_after_s: float = 60.0
    # the outbox this full (of [outbox] max_bytes) is an alert: the uplink has been down long
    outbox_alert_percent: float = 80.0
    # digests ("sha256$" + hex) of the staff bus tokens: only a bus client holding one may
    # list, acknowledge and close alerts (agent/contracts/alerts.py); none = nobody may.
    # 'o2o-edge staff-view bus-token' makes a token and prints both lines
    bus_tokens: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class PosConfig:
    # the till's endpoint (agent/pos/): off until a store turns it on
    enabled: bool = False
    listen: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1:8470"])
    # one entry per till, "NAME=SHA256HEX" of its bearer token (`o2o-edge pos token NAME`
    # makes one): the file never holds a token itself
    tokens: list[str] = dataclasses.field(default_factory=list)
    max_body_bytes: int = 64 * 1024
    rate_per_min: int = 120  # requests a till may make a minute (a burst of a tenth of it)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"  # Prometheus metrics; "" turns the endpoint off
    telemetry_interval_s: float = 60.0  # health on MQTT …/telemetry; 0 turns it off


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
    staff: StaffConfig = dataclasses.field(default_factory=StaffConfig)
    pos: PosConfig = dataclasses.field(default_factory=PosConfig)
    source: str = "built-in defaults"
    path: str = ""  # the file it came from ("" for the built-in defaults)
    remote_version: int | None = None  # the remote overlay's version, when one is applied

    @property
    def topic_base(self) -> str:
        return f"o2o/v1/{self.device.store}/{self.device.id}"


# the tables of the file, in the order `config show` prints them
SECTIONS: Final[dict[str, type]] = {
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
    "staff": StaffConfig,
    "pos": PosConfig,
}
