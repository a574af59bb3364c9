"""The tables of the store's configuration file that the kiosk reads as well as the agent:
[device] (the store and device names its hand-off links carry), [bus] (the socket it reaches
the agent on) and [kiosk]. One schema and one set of checks for both, so the kiosk cannot
accept what the agent's `config check` refuses, or the other way round.
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Final

from agent.contracts.settings_file import default_device_id, state_dir
from agent.contracts.settings_values import Check
from agent.rundir import runtime_dir

# sockaddr_un.sun_path holds 108 bytes with its terminating NUL: a longer socket path fails
# at bind() only, deep in the agent's start
MAX_SOCKET_PATH: Final = 107
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# the languages the kiosk has a catalogue for (kiosk/i18n/<code>.json): another code would
# start sessions in English without a word. The agent may not import the kiosk; a test
# (tests/unit/test_config_check.py) keeps this list and the catalogues in step.
KIOSK_LANGUAGES: Final = ("de", "en", "es")


@dataclass(frozen=True)
class DeviceConfig:
    store: str = "demo-store"
    id: str = dataclasses.field(default_factory=default_device_id)
    # the store's IANA time zone: the days and hours of its KPIs (`report`)
    timezone: str = "UTC"


@dataclass(frozen=True)
class BusConfig:
    # per user, and checked when it is under /tmp (agent/rundir.py)
    socket: Path = dataclasses.field(default_factory=lambda: runtime_dir() / "agent.sock")


@dataclass(frozen=True)
class KioskConfig:
    # orders, appointments and loyalty cards that check-in is answered from
    store_db: Path = dataclasses.field(default_factory=lambda: state_dir() / "store.db")
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


def check_name(v: str) -> str | None:
    """A store or device name: it becomes an MQTT topic level and part of file names."""
    if not _NAME_RE.fullmatch(v):
        return "1-64 characters of letters, digits, '_', '.', '-' (no '/', '+', '#' or spaces)"
    return None


def store_zone(name: str) -> tzinfo:
    """The zone of an IANA name, from the system's tz database (Debian's tzdata package);
    ValueError for a name it does not hold, saying what to use instead."""
    if name == "UTC":  # needs no database
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(check_timezone(name)) from None


def check_timezone(v: str) -> str | None:
    if v == "UTC":
        return None
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        if not zoneinfo.available_timezones():
            return ('"UTC", or install the time zone database (sudo apt-get install tzdata) '
                    "to name the store's zone")
        return ('an IANA time zone name such as "Europe/Berlin" or "America/New_York" '
                "(timedatectl list-timezones lists them)")
    return None


def is_hostport(v: str) -> bool:
    host, sep, port = v.rpartition(":")
    return (bool(sep and re.fullmatch(r"[A-Za-z0-9_.:\[\]-]+", host, re.ASCII))
            and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


SHARED_CHECKS: Final[dict[tuple[str, str], Check]] = {
    ("device", "store"): check_name,
    ("device", "id"): check_name,
    ("device", "timezone"): check_timezone,
    ("kiosk", "language"): lambda v: None if v in KIOSK_LANGUAGES else
    "one of the kiosk's languages: " + ", ".join(KIOSK_LANGUAGES),
    ("kiosk", "idle_s"): lambda v: None if 10 <= v <= 3600 else "10 to 3600 seconds",
    ("kiosk", "idle_warning_s"): lambda v: None if 5 <= v <= 120 else "5 to 120 seconds",
    ("kiosk", "early_checkin_min"): lambda v: None if 0 <= v <= 1440 else "0 to 1440 minutes",
    ("kiosk", "staff_pin_hash"): lambda v: None if v == "" or v.startswith("scrypt$") else
    "a hash made by 'o2o-edge kiosk pin' (starts with scrypt$), or \"\" to close staff mode",
    ("kiosk", "serve"): lambda v: None if is_hostport(v) else
    '"HOST:PORT" with a port from 1 to 65535, like "127.0.0.1:8765"',
    ("kiosk", "serve_sessions"): lambda v: None if 1 <= v <= 16 else "1 to 16 sessions",
    ("kiosk", "scale"): lambda v: None if 0.5 <= v <= 2.0 else
    "0.5 to 2 (1.0: the text size the kiosk picks for the screen)",
}


def shared_problem(kiosk: KioskConfig, bus: BusConfig) -> str | None:
    """What is wrong between values of these tables, as "[table] key ..."; None if nothing."""
    if kiosk.idle_warning_s >= kiosk.idle_s:
        return "[kiosk] idle_warning_s must be less than idle_s"
    if len(bytes(bus.socket)) > MAX_SOCKET_PATH:
        return (f"[bus] socket {str(bus.socket)!r} is longer than {MAX_SOCKET_PATH} bytes "
                "(a limit of Unix sockets); choose a shorter path")
    return None
