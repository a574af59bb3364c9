"""The staff view's own settings: a small TOML file of its own, not the agent's configuration
(the agent refuses sections it does not know, and the staff PINs are nobody else's business).

Lookup: ``--settings PATH``, ``$O2O_EDGE_STAFF_VIEW``, ``/etc/o2o-edge/staff-view.toml``, else
the built-in defaults, which keep the view off. The bus socket and the device's name come
from the store's configuration file through the kiosk's settings (kiosk/settings.py)::

    [staff_view]
    enabled = true
    listen = ["192.168.1.20:8443"]       # only these addresses; default 127.0.0.1:8766
    tls_cert = "/etc/o2o-edge/staff.crt"  # both or neither; the cookie is Secure with TLS
    tls_key = "/etc/o2o-edge/staff.key"
    session_min = 480                     # a shift; sign in again after
    bus_token = "..."                     # 'o2o-edge staff-view bus-token' output: lets
                                          # the view list and act on alerts (its digest in
                                          # the agent's [staff] bus_tokens); keep this file
                                          # readable by the view's user alone
    [staff_view.staff]                    # name = 'o2o-edge staff-view pin' output
    Anna = "scrypt$16384$8$1$..."
    [staff_view.devices]                  # name = 'o2o-edge staff-view token' output
    counter-handheld = "sha256$..."
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agent.contracts.alerts import TOKEN_MAX, TOKEN_MIN
from agent.contracts.settings_file import read_toml
from agent.contracts.shared_settings import is_hostport
from agent.errors import AgentError
from kiosk.errors import KioskError, KioskReason

SYSTEM_FILE: Final = Path("/etc/o2o-edge/staff-view.toml")
ENV_FILE: Final = "O2O_EDGE_STAFF_VIEW"
DEFAULT_LISTEN: Final = "127.0.0.1:8766"
_STAFF_NAME: Final = re.compile(r"[^\x00-\x1f\x7f<>&\"']{1,32}")
_DEVICE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_KEYS: Final = frozenset({"enabled", "listen", "tls_cert", "tls_key", "session_min",
                          "rate_per_s", "staff", "devices", "bus_token"})
_TOKEN: Final = re.compile(rf"[A-Za-z0-9_.~+/=-]{{{TOKEN_MIN},{TOKEN_MAX}}}")


@dataclass(frozen=True)
class StaffViewSettings:
    enabled: bool = False
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    tls_cert: str = ""
    tls_key: str = ""
    session_min: float = 480.0
    rate_per_s: float = 10.0  # per client address, with a burst of 6 s worth
    staff: Mapping[str, str] = field(default_factory=dict)  # name -> scrypt hash
    devices: Mapping[str, str] = field(default_factory=dict)  # name -> sha256 hash of token
    bus_token: str = field(default="", repr=False)  # the staff bus token (a secret)
    source: str = "built-in defaults"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def _fail(origin: str, what: str) -> KioskError:
    return KioskError(KioskReason.SETTINGS, f"{origin}: [staff_view] {what}")


def _table(raw: Any, origin: str, key: str, name_re: re.Pattern[str],
           prefix: str, maker: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _fail(origin, f"{key}: a table of name = hash")
    for name, value in raw.items():
        if not name_re.fullmatch(name):
            raise _fail(origin, f"{key}: {name[:40]!r} is not a usable name")
        if not (isinstance(value, str) and value.startswith(prefix)):
            raise _fail(origin, f"{key}.{name}: a hash made by '{maker}' (starts with {prefix})")
    return dict(raw)


def parse(doc: Mapping[str, Any], origin: str) -> StaffViewSettings:
    raw = doc.get("staff_view", {})
    if not isinstance(raw, dict):
        raise _fail(origin, "must be a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(origin, f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    s = StaffViewSettings()
    enabled = raw.get("enabled", s.enabled)
    if not isinstance(enabled, bool):
        raise _fail(origin, "enabled: true or false")
    listen = raw.get("listen", list(s.listen))
    if isinstance(listen, str):
        listen = [listen]
    if not (isinstance(listen, list) and listen
            and all(isinstance(v, str) and is_hostport(v) for v in listen)):
        raise _fail(origin, 'listen: a list of "HOST:PORT", like ["127.0.0.1:8766"]')
    cert, key = raw.get("tls_cert", ""), raw.get("tls_key", "")
    if not (isinstance(cert, str) and isinstance(key, str)) or bool(cert) != bool(key):
        raise _fail(origin, "tls_cert and tls_key: both file paths, or neither")
    session = raw.get("session_min", s.session_min)
    if isinstance(session, bool) or not isinstance(session, int | float) \
            or not 1 <= session <= 1440:
        raise _fail(origin, "session_min: 1 to 1440 minutes")
    rate = raw.get("rate_per_s", s.rate_per_s)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 1 <= rate <= 1000:
        raise _fail(origin, "rate_per_s: 1 to 1000 requests a second")
    staff = _table(raw.get("staff", {}), origin, "staff", _STAFF_NAME, "scrypt$",
                   "o2o-edge staff-view pin")
    devices = _table(raw.get("devices", {}), origin, "devices", _DEVICE_NAME, "sha256$",
                     "o2o-edge staff-view token")
    token = raw.get("bus_token", "")
    if not isinstance(token, str) or (token and not _TOKEN.fullmatch(token)):
        raise _fail(origin, "bus_token: the token 'o2o-edge staff-view bus-token' printed")
    return StaffViewSettings(enabled, tuple(listen), cert, key, float(session), float(rate),
                             staff, devices, token, origin)


def settings_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get(ENV_FILE):
        return Path(env[ENV_FILE])
    return SYSTEM_FILE if SYSTEM_FILE.exists() else None


def load_staff_view(explicit: str | None = None,
                    env: Mapping[str, str] | None = None) -> StaffViewSettings:
    """The staff view's settings; KioskError (SETTINGS) saying what to fix."""
    path = settings_file(explicit, os.environ if env is None else env)
    if path is None:
        return StaffViewSettings()
    try:
        doc = read_toml(path)
    except AgentError as exc:
        raise KioskError(KioskReason.SETTINGS, str(exc)) from None
    return parse(doc, str(path))
