"""The store's configuration file and the environment, read the one way the agent and the
kiosk both read them: where the file is, how it is read, what the environment may override.

The kiosk reads its own few tables of the same file (kiosk/settings.py) without loading the
agent's configuration, so this convention lives in the client contract rather than beside the
agent's schema (agent/config_load.py): a file mistake reads the same from `config check` and
from the kiosk. This is the one module under contracts/ that does I/O: reading this file.

Lookup order: ``--config PATH``, ``$O2O_EDGE_CONFIG``, ``/etc/o2o-edge/config.toml``, else the
built-in defaults alone. Every key of every table can be overridden from the environment as
``O2O_EDGE_<TABLE>_<KEY>`` (``O2O_EDGE_MQTT_URL``).
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agent.errors import ConfigError

SYSTEM_CONFIG: Final = Path("/etc/o2o-edge/config.toml")
ENV_CONFIG: Final = "O2O_EDGE_CONFIG"
ENV_PREFIX: Final = "O2O_EDGE_"
# a config file is a few KiB; anything far larger is the wrong file (a log, a database)
MAX_CONFIG_BYTES: Final = 1024 * 1024


def env_var(table: str, key: str) -> str:
    """The environment variable that overrides `key` of `[table]`."""
    return f"{ENV_PREFIX}{table.upper()}_{key.upper()}"


APP_DIR: Final = "o2o-edge"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the agent keeps its state (databases, remote config) unless the file says:
    $XDG_STATE_HOME/o2o-edge, or ~/.local/state/o2o-edge. The one place this rule is written
    (agent/statepaths.py places the agent's files in it)."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP_DIR


def default_device_id() -> str:
    """The host name, made a valid [device] id: it ends up in topics and hand-off links."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64].strip("-.")
    return host or "edge-0"


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML document; ConfigError saying what is wrong with the file otherwise."""
    if "\0" in str(path):
        raise ConfigError(f"{str(path)!r}: a file name cannot contain a NUL byte")
    try:
        # a FIFO or a device would block or stream for ever: only a regular file is read
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path}: is a directory; give the config file inside it "
                              "(config.toml)")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: is not a regular file; give a TOML config file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {st.st_size:,} bytes is too big for a config file "
                              f"(at most {MAX_CONFIG_BYTES:,}); is it the right file?")
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: config file not readable (check its permissions)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text; save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
