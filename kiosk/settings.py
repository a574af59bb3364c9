"""The kiosk's own settings: the [kiosk] section of the store's configuration file, the bus
socket it reaches the agent on ([bus] socket) and the device's name ([device] store and id,
which the kiosk's hand-off links carry).

The kiosk is browser-facing (textual-serve starts one per connection), so it does not load the
agent's configuration: it reads the same TOML file (``--config PATH``, ``$O2O_EDGE_CONFIG``,
``/etc/o2o-edge/config.toml``) and keeps these three tables only — the MQTT password and the
rest never reach its memory past the parse. Each key can be overridden from the environment as
the agent's can (``O2O_EDGE_KIOSK_LANGUAGE``). Mistakes are one-line `KioskError`s naming the
file or variable, the key and what to write, worded as the agent's `config check` words them;
the agent checks every other section when it starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agent.errors import AgentError
from agent.rundir import runtime_dir  # where the agent's bus lives: part of the bus contract
from kiosk.errors import KioskError, KioskReason

SYSTEM_CONFIG: Final = Path("/etc/o2o-edge/config.toml")
ENV_CONFIG: Final = "O2O_EDGE_CONFIG"
ENV_PREFIX: Final = "O2O_EDGE_"
MAX_CONFIG_BYTES: Final = 1024 * 1024  # a config file is a few KiB: far larger is the wrong file
MAX_SOCKET_PATH: Final = 107  # sockaddr_un.sun_path: 108 bytes with the terminating NUL
MAX_TEXT: Final = 4096  # any text option
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "o2o-edge"


def _default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64].strip("-.")
    return host or "edge-0"


@dataclass(frozen=True)
class KioskSection:
    # the same keys and defaults as the agent's [kiosk] (tests/unit/kiosk/test_settings.py
    # holds the two together); see agent/config.py for what each is
    store_db: Path = dataclasses.field(default_factory=lambda: _state_dir() / "store.db")
    content_dir: str = ""
    language: str = "en"
    idle_s: float = 45.0
    idle_warning_s: float = 15.0
    early_checkin_min: float = 30.0
    staff_pin_hash: str = ""
    serve: str = "127.0.0.1:8765"
    serve_sessions: int = 2
    scale: float = 1.0


@dataclass(frozen=True)
class BusSection:
    socket: Path = dataclasses.field(default_factory=lambda: runtime_dir() / "agent.sock")


@dataclass(frozen=True)
class DeviceSection:
    store: str = "demo-store"
    id: str = dataclasses.field(default_factory=_default_device_id)


@dataclass(frozen=True)
class KioskSettings:
    kiosk: KioskSection = dataclasses.field(default_factory=KioskSection)
    bus: BusSection = dataclasses.field(default_factory=BusSection)
    device: DeviceSection = dataclasses.field(default_factory=DeviceSection)
    source: str = "built-in defaults"


def _hostport(v: str) -> bool:
    host, sep, port = v.rpartition(":")
    return bool(sep and re.fullmatch(r"[A-Za-z0-9_.:\[\]-]+", host, re.ASCII)
                and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


_CHECKS: Final[dict[tuple[str, str], Callable[[Any], str | None]]] = {
    ("device", "store"): lambda v: None if _NAME_RE.fullmatch(v) else
    "1-64 characters of letters, digits, '_', '.', '-' (no '/', '+', '#' or spaces)",
    ("device", "id"): lambda v: None if _NAME_RE.fullmatch(v) else
    "1-64 characters of letters, digits, '_', '.', '-' (no '/', '+', '#' or spaces)",
    ("kiosk", "language"): lambda v: None if re.fullmatch(
        r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", v, re.ASCII) else "a language code like 'en' or 'de'",
    ("kiosk", "idle_s"): lambda v: None if 10 <= v <= 3600 else "10 to 3600 seconds",
    ("kiosk", "idle_warning_s"): lambda v: None if 5 <= v <= 120 else "5 to 120 seconds",
    ("kiosk", "early_checkin_min"): lambda v: None if 0 <= v <= 1440 else "0 to 1440 minutes",
    ("kiosk", "staff_pin_hash"): lambda v: None if v == "" or v.startswith("scrypt$") else
    "a hash made by 'o2o-edge kiosk pin' (starts with scrypt$), or \"\" to close staff mode",
    ("kiosk", "serve"): lambda v: None if _hostport(v) else
    '"HOST:PORT" with a port from 1 to 65535, like "127.0.0.1:8765"',
    ("kiosk", "serve_sessions"): lambda v: None if 1 <= v <= 16 else "1 to 16 sessions",
    ("kiosk", "scale"): lambda v: None if 0.5 <= v <= 2.0 else
    "0.5 to 2 (1.0: the text size the kiosk picks for the screen)",
}
_SECTIONS: Final[dict[str, type[Any]]] = {
    "kiosk": KioskSection, "bus": BusSection, "device": DeviceSection}
_TYPES: Final = {"str": str, "int": int, "float": float, "Path": Path}
_TYPE_NAMES: Final = {str: "a string", int: "an integer", float: "a number", Path: "a path string"}


def _problem(name: str, key: str, value: Any) -> str | None:
    text = str(value) if isinstance(value, str | Path) else None
    if text is not None and _CONTROL_RE.search(text):
        return "text without control characters (newline, tab, NUL, escape) or invalid UTF-8"
    if text is not None and len(text) > MAX_TEXT:
        return f"at most {MAX_TEXT} characters"
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number (not inf or nan)"
    check = _CHECKS.get((name, key))
    return check(value) if check else None


def _coerce(value: Any, ftype: type[Any], where: str) -> Any:
    """A TOML value of the field's type; no silent conversions except int -> float."""
    if ftype is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if ftype is float and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer past 1.8e308
            raise KioskError(KioskReason.SETTINGS, f"{where}: {str(value)[:20]}... is out of "
                                                   "range") from None
    if ftype is str and isinstance(value, str):
        return value
    if ftype is Path and isinstance(value, str) and value and not _CONTROL_RE.search(value):
        try:
            return Path(value).expanduser()
        except RuntimeError:  # "~user/..." of a user this machine does not have
            raise KioskError(KioskReason.SETTINGS, f"{where}: {value!r} names a home directory "
                                                   "this machine does not know; give an "
                                                   "absolute path") from None
    shown = f"{type(value).__name__} {value!r}"[:100]
    raise KioskError(KioskReason.SETTINGS, f"{where}: must be {_TYPE_NAMES[ftype]}, got {shown}")


def _from_env(raw: str, ftype: type[Any], where: str) -> Any:
    if ftype in (int, float):
        try:
            return ftype(raw.strip())
        except ValueError:
            raise KioskError(KioskReason.SETTINGS, f"{where}: must be {_TYPE_NAMES[ftype]}, got "
                                                   f"{raw[:40]!r}") from None
    return _coerce(raw, ftype, where)


def _section(name: str, table: Any, origin: str, env: Mapping[str, str]) -> Any:
    if not isinstance(table, dict):
        raise KioskError(KioskReason.SETTINGS, f"{origin}: {name} must be a table ([{name}])")
    cls = _SECTIONS[name]
    types = {f.name: _TYPES[str(f.type)] for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in types:
            raise KioskError(KioskReason.SETTINGS, f"{origin}: unknown key [{name}] {key!r}; "
                                                   f"allowed keys: {', '.join(sorted(types))}")
        values[key] = _coerce(value, types[key], f"{origin}: [{name}] {key}")
    for key, ftype in types.items():
        var = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
        if var in env:
            values[key] = _from_env(env[var], ftype, f"environment {var}")
    section = cls(**values)
    for key in types:
        value = getattr(section, key)
        if problem := _problem(name, key, value):
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise KioskError(KioskReason.SETTINGS, f"{origin}: [{name}] {key} = {shown} is not "
                                                   f"allowed; use {problem}")
    return section


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML document, or a KioskError saying what is wrong with the file: only a
    regular file (a FIFO would block), of a config file's size, as UTF-8."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG_BYTES:
            raise KioskError(KioskReason.SETTINGS, f"{path}: not a config file (give a TOML file "
                                                   f"of at most {MAX_CONFIG_BYTES:,} bytes)")
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KioskError(KioskReason.SETTINGS, f"{path}: cannot read the config file ({why})") \
            from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KioskError(KioskReason.SETTINGS, f"{path}: line {line}: not UTF-8 text; save the "
                                               "file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise KioskError(KioskReason.SETTINGS, f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise KioskError(KioskReason.SETTINGS, f"{path}: not valid TOML: nested too deeply") \
            from None


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_settings(explicit: str | None = None,
                  env: Mapping[str, str] | None = None) -> KioskSettings:
    """The kiosk's settings from the configuration file and the environment; KioskError
    (reason SETTINGS) saying what to fix."""
    env = os.environ if env is None else env
    path = find_config_file(explicit, env)
    doc: dict[str, Any] = read_toml(path) if path is not None else {}
    origin = str(path) if path is not None else "built-in defaults"
    # only our tables are looked at and kept; the agent checks and keeps the others
    try:
        sections = {name: _section(name, doc.get(name, {}), origin, env) for name in _SECTIONS}
    except AgentError as exc:  # the default socket's runtime directory is not a safe one
        raise KioskError(KioskReason.SETTINGS, str(exc)) from None
    settings = KioskSettings(source=origin, **sections)
    k = settings.kiosk
    if k.idle_warning_s >= k.idle_s:
        raise KioskError(KioskReason.SETTINGS, f"{origin}: [kiosk] idle_warning_s must be less "
                                               "than idle_s")
    if len(bytes(settings.bus.socket)) > MAX_SOCKET_PATH:
        raise KioskError(KioskReason.SETTINGS, f"{origin}: [bus] socket "
                                               f"{str(settings.bus.socket)!r} is longer than "
                                               f"{MAX_SOCKET_PATH} bytes (a limit of Unix "
                                               "sockets); choose a shorter path")
    return settings
