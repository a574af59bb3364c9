"""Typed settings tables: a TOML table and its environment overrides made into a frozen
dataclass, with no silent conversion, and each mistake one ConfigError line naming the file
or variable, the key and what to write instead.

The schema is the dataclass itself: its fields (str, int, float, bool, Path, list[str]) and
defaults. A table of checks keyed by (table, key) says what each value may be. The agent's
configuration (agent/config_load.py) and the kiosk's settings (kiosk/settings.py) are both
built here, so a mistake reads the same from either.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from agent.contracts.settings_file import env_var
from agent.errors import ConfigError

# what a value may be: None when it is fine, else what is allowed ("use ...")
Check = Callable[[Any], str | None]
T = TypeVar("T")

# characters that must never reach a topic, a path, a log line or a header: C0 and C1
# controls (NUL, newline, escape), DEL, the Unicode line/paragraph separators and lone
# surrogates (an environment value that is not UTF-8)
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
MAX_TEXT: Final = 4096  # no option needs more; a key or a path longer than this is a mistake
# the field annotations a settings dataclass may use (read as text: annotations are postponed)
_FIELD_TYPES: Final[dict[str, type]] = {"str": str, "int": int, "float": float, "bool": bool,
                                        "Path": Path, "list[str]": list}


def check_text(v: str) -> str | None:
    """Any string option: printable text of sensible length (the first check of every
    string, before its own)."""
    if _CONTROL_RE.search(v):
        return "text without control characters (newline, tab, NUL, escape) or invalid UTF-8"
    if len(v) > MAX_TEXT:
        return f"at most {MAX_TEXT} characters"
    return None


def check_number(v: float) -> str | None:
    """Any number option: finite (TOML allows inf and nan; neither is a duration or a size)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "a finite number (not inf or nan)"
    return None


def generic_problem(value: object) -> str | None:
    """What every option of its type must be, before its own check: text without control
    characters (they would end up in topics, paths and headers), finite numbers."""
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, Path):
        return check_text(str(value))
    if isinstance(value, list):
        return next((p for p in map(check_text, value) if p), None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return check_number(value)
    return None


def field_types(cls: type) -> dict[str, type]:
    """Each field of a settings dataclass and the type its value must have."""
    return {f.name: _FIELD_TYPES[str(f.type)] for f in dataclasses.fields(cls)}


def type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings"}.get(t, "a path string")


def coerce(value: object, ftype: type, where: str) -> object:
    """Check a TOML value against the field type; no silent conversions except int -> float."""
    if ftype is bool:
        if isinstance(value, bool):
            return value
    elif ftype is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif ftype is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer past 1.8e308
                raise ConfigError(f"{where}: {str(value)[:20]}... is out of range") from None
    elif ftype is str:
        if isinstance(value, str):
            return value
    elif ftype is Path and isinstance(value, str) and value:
        problem = check_text(value)
        if problem:
            raise ConfigError(f"{where}: must be a path, {problem}")
        try:
            return Path(value).expanduser()
        except RuntimeError:  # "~user/..." of a user this machine does not have
            raise ConfigError(f"{where}: {value!r} names a home directory this machine does "
                              "not know; give an absolute path") from None
    elif ftype is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    shown = f"{type(value).__name__} {value!r}"[:100]  # a huge value: its start is enough
    raise ConfigError(f"{where}: must be {type_name(ftype)}, got {shown}")


def from_env(raw: str, ftype: type, where: str) -> object:
    """An environment string as the field's type: booleans as 1/0, true/false, yes/no, on/off;
    lists comma-separated."""
    if ftype is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: must be true or false, got {raw!r}")
    if ftype is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if ftype is int or ftype is float:
        try:  # int() also refuses more than 4,300 digits with a ValueError
            return ftype(raw.strip())
        except ValueError:
            raise ConfigError(f"{where}: must be {type_name(ftype)}, got {raw[:40]!r}") from None
    return coerce(raw, ftype, where)


def build_section(cls: type[T], name: str, table: object, origin: str,
                  env: Mapping[str, str], checks: Mapping[tuple[str, str], Check]) -> T:
    """The `[name]` table of the document from `origin`, with its environment overrides, as
    `cls`; every value checked (its type's generic check, then checks[(name, key)])."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: {name} must be a table ([{name}])")
    types = field_types(cls)
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in types:
            allowed = ", ".join(sorted(types))
            raise ConfigError(f"{origin}: unknown key [{name}] {key!r}; allowed keys: {allowed}")
        values[key] = coerce(value, types[key], f"{origin}: [{name}] {key}")
    for key, ftype in types.items():
        var = env_var(name, key)
        if var in env:
            values[key] = from_env(env[var], ftype, f"environment {var}")
    section = cls(**values)
    for key in types:
        value = getattr(section, key)
        problem = generic_problem(value)
        if problem is None and (check := checks.get((name, key))) is not None:
            problem = check(value)
        if problem:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise ConfigError(f"{origin}: [{name}] {key} = {shown} is not allowed; use {problem}")
    return section
