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

from agent.config_checks import CHECKS, cross_checks, identity_problems
from agent.config_schema import SECTIONS, Config
from agent.contracts.settings_file import (
    ENV_CONFIG,
    ENV_PREFIX,
    env_var,
    find_config_file,
    read_toml,
)
from agent.contracts.settings_values import build_section, field_types
from agent.errors import ConfigError
from agent.statepaths import RemoteConfigFiles

# what upstream may set; the device's identity, the outbox and the bus stay as the file says
REMOTE_SECTIONS: Final = frozenset({"mqtt", "ble", "qr", "nfc", "kiosk", "metrics", "privacy"})
# the O2O_EDGE_ variables that are not a [table] key: where the file is, the staff view's
# settings file, the collector's broker password, the virtual environment dev.py makes
OTHER_ENV: Final = frozenset({ENV_CONFIG, "O2O_EDGE_STAFF_VIEW", "O2O_EDGE_COLLECT_PASSWORD",
                              "O2O_EDGE_VENV"})


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


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """A warning for each O2O_EDGE_ variable that sets nothing (a misspelt key is otherwise
    ignored without a word), with the closest real one."""
    import difflib

    known = {env_var(name, key) for name, cls in SECTIONS.items() for key in field_types(cls)}
    warnings = []
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        if var in known or var in OTHER_ENV:
            continue
        # compared without the prefix every one of them shares
        names = {v.removeprefix(ENV_PREFIX): v for v in known | OTHER_ENV}
        short = var.removeprefix(ENV_PREFIX)
        near = [n for n in sorted(names) if n.startswith(short)][:1] or \
            difflib.get_close_matches(short, sorted(names), n=1, cutoff=0.8)
        hint = f"; did you mean {names[near[0]]}?" if near else ""
        warnings.append(f"environment {var} is not a setting and is ignored{hint}")
    return warnings


def config_problems(explicit: str | None = None,
                    env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the configuration at once (load_config stops at the first): each
    key of the file and each environment override checked on its own, then, when they are
    all fine, what is wrong between them. [] when the configuration loads."""
    env = os.environ if env is None else env
    try:
        path = find_config_file(explicit, env)
        doc = read_toml(path) if path is not None else {}
    except ConfigError as exc:
        return [str(exc)]
    origin = str(path) if path is not None else "built-in defaults"
    problems: list[str] = []
    for name, table in doc.items():
        cls = SECTIONS.get(name)
        if cls is None:
            allowed = ", ".join(f"[{s}]" for s in SECTIONS)
            problems.append(f"{origin}: unknown section [{name}]; allowed sections: {allowed}")
            continue
        if not isinstance(table, dict):
            problems.append(f"{origin}: {name} must be a table ([{name}])")
            continue
        for key, value in table.items():
            if env_var(name, key) in env:
                continue  # the environment's value is the one used (and checked below)
            try:
                build_section(cls, name, {key: value}, origin, {}, CHECKS)
            except ConfigError as exc:
                problems.append(str(exc))
    for name, cls in SECTIONS.items():
        for key in field_types(cls):
            var = env_var(name, key)
            if var in env:
                try:
                    build_section(cls, name, {}, f"environment {var}", {var: env[var]}, CHECKS)
                except ConfigError as exc:
                    problems.append(str(exc))
    if not problems:
        try:
            problems += identity_problems(load_config(explicit, env))
        except ConfigError as exc:
            problems.append(str(exc))
    return problems
