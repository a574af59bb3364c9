"""The kiosk's own settings: the [kiosk] section of the store's configuration file, the bus
socket it reaches the agent on ([bus] socket) and the device's name ([device] store and id,
which the kiosk's hand-off links carry).

The kiosk is browser-facing (textual-serve starts one per connection), so it does not load the
agent's configuration: it reads the same TOML file (``--config PATH``, ``$O2O_EDGE_CONFIG``,
``/etc/o2o-edge/config.toml``) and keeps these three tables only — the MQTT password and the
rest never reach its memory past the parse. Each key can be overridden from the environment as
the agent's can (``O2O_EDGE_KIOSK_LANGUAGE``). The file, the environment and these tables'
schema and checks are the agent's client contract (agent/contracts/settings_file.py,
settings_values.py, shared_settings.py), so a mistake is the one-line message the agent's
`config check` gives, as a `KioskError`; the agent checks every other section when it starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.contracts.settings_file import find_config_file, read_toml
from agent.contracts.settings_values import build_section
from agent.contracts.shared_settings import (
    SHARED_CHECKS,
    BusConfig,
    DeviceConfig,
    KioskConfig,
    shared_problem,
)
from agent.errors import AgentError
from kiosk.errors import KioskError, KioskReason

# the kiosk's names for the shared tables
KioskSection = KioskConfig
BusSection = BusConfig
DeviceSection = DeviceConfig


@dataclass(frozen=True)
class KioskSettings:
    kiosk: KioskSection = dataclasses.field(default_factory=KioskSection)
    bus: BusSection = dataclasses.field(default_factory=BusSection)
    device: DeviceSection = dataclasses.field(default_factory=DeviceSection)
    source: str = "built-in defaults"


def _read(explicit: str | None, env: Mapping[str, str]) -> KioskSettings:
    path = find_config_file(explicit, env)
    doc: dict[str, Any] = read_toml(path) if path is not None else {}
    origin = str(path) if path is not None else "built-in defaults"
    # only our tables are looked at and kept; the agent checks and keeps the others
    # built in the agent's order of the tables, so a file with several mistakes is refused
    # for the same first one
    device = build_section(DeviceSection, "device", doc.get("device", {}), origin, env,
                           SHARED_CHECKS)
    bus = build_section(BusSection, "bus", doc.get("bus", {}), origin, env, SHARED_CHECKS)
    kiosk = build_section(KioskSection, "kiosk", doc.get("kiosk", {}), origin, env,
                          SHARED_CHECKS)
    settings = KioskSettings(kiosk=kiosk, bus=bus, device=device, source=origin)
    problem = shared_problem(settings.kiosk, settings.bus)
    if problem:
        raise KioskError(KioskReason.SETTINGS, f"{origin}: {problem}")
    return settings


def load_settings(explicit: str | None = None,
                  env: Mapping[str, str] | None = None) -> KioskSettings:
    """The kiosk's settings from the configuration file and the environment; KioskError
    (reason SETTINGS) saying what to fix."""
    try:
        return _read(explicit, os.environ if env is None else env)
    except AgentError as exc:  # a ConfigError, or a default runtime directory that is unsafe
        raise KioskError(KioskReason.SETTINGS, str(exc)) from None
