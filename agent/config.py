"""Configuration: TOML file, environment overrides, built-in defaults, strict validation.

Lookup order for the file: ``--config PATH``, ``$O2O_EDGE_CONFIG``, ``/etc/o2o-edge/config.toml``,
else the built-in defaults alone. Every key of every section can be overridden from the
environment as ``O2O_EDGE_<SECTION>_<KEY>`` (``O2O_EDGE_MQTT_URL``). Unknown keys, wrong types and
bad values are errors that name the file (or variable), the key and what is allowed.

This module is the one the rest of the agent imports from; the work is done in:
- agent/config_schema.py: the tables, their fields and defaults (`Config`);
- agent/config_checks.py: what each value, and the whole, may be;
- agent/config_load.py: file + remote overlay + environment -> a checked `Config`;
- agent/config_render.py: the effective configuration as a dict or TOML, secrets masked;
- agent/contracts/settings_*.py: the file and environment convention, shared with the kiosk.
"""

from __future__ import annotations

from agent.config_checks import is_loopback
from agent.config_load import (
    REMOTE_SECTIONS,
    load_config,
    merge_overlay,
    read_overlay,
    remote_config_paths,
)
from agent.config_render import SECRET_KEYS, config_as_dict, render_toml
from agent.config_schema import (
    SECTIONS,
    BleConfig,
    BusConfig,
    Config,
    DeviceConfig,
    KioskConfig,
    LinkConfig,
    MetricsConfig,
    MqttConfig,
    NfcConfig,
    OutboxConfig,
    PrivacyConfig,
    QrConfig,
)
from agent.contracts.settings_file import ENV_CONFIG, ENV_PREFIX, SYSTEM_CONFIG, find_config_file
from agent.contracts.shared_settings import MAX_SOCKET_PATH

__all__ = [
    "ENV_CONFIG", "ENV_PREFIX", "MAX_SOCKET_PATH", "REMOTE_SECTIONS", "SECRET_KEYS", "SECTIONS",
    "SYSTEM_CONFIG", "BleConfig", "BusConfig", "Config", "DeviceConfig", "KioskConfig",
    "LinkConfig", "MetricsConfig", "MqttConfig", "NfcConfig", "OutboxConfig", "PrivacyConfig",
    "QrConfig", "config_as_dict", "find_config_file", "is_loopback", "load_config",
    "merge_overlay", "read_overlay", "remote_config_paths", "render_toml",
]
