"""Loading the configuration: the TOML file, a remote overlay laid over it, the environment
over both, every value checked (agent/config_checks.py) into the schema
(agent/config_schema.py). Each mistake is a ConfigError naming the file (or variable), the key
and what is allowed.

The remote overlays are the signed config documents from upstream, kept as JSON beside the
agent's state: the applied one, and a pending one on trial after the restart that applies it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agent.config_checks import CHECKS, cross_checks
from agent.config_schema import SECTIONS, Config
from agent.contracts.settings_file import find_config_file, read_toml
from agent.contracts.settings_values import build_section
from agent.errors import ConfigError
from agent.statepaths import RemoteConfigFiles

# what upstream may set; the device's identity, the outbox and the bus stay as the file says
REMOTE_SECTIONS: Final = frozenset({"mqtt", "ble", "qr", "nfc", "kiosk", "metrics", "privacy"})


def remote_config_paths() -> tuple[Path, Path]:
    """(applied, pending) remote configuration overlays, in the agent's state directory
    (agent/statepaths.py places them)."""
    files = RemoteConfigFiles.here()
    return files.applied, files.pending


def read_overlay(path: Path) -> tuple[int, dict[str, dict[str, Any]]] | None:
    """(version, sections) of an overlay file; None when it is missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
        return int(doc["version"]), dict(doc["sections"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def merge_overlay(doc: dict[str, Any], sections: Mapping[str, Any]) -> dict[str, Any]:
    """The file's document with remote sections laid over it, key by key."""
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
        if name not in SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in SECTIONS)
            raise ConfigError(f"{origin}: unknown section [{name}]; allowed sections: {allowed}")
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {name} must be a table ([{name}])")
    sections: dict[str, Any] = {
        name: build_section(cls, name, doc.get(name, {}), origin, env, CHECKS)
        for name, cls in SECTIONS.items()}
    cfg = Config(source=origin, path=str(path) if path else "",
                 remote_version=overlay[0] if overlay else None, **sections)
    cross_checks(cfg)
    return cfg
