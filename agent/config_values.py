"""Reading configuration values: the TOML file (only a regular file of sane size, as UTF-8),
environment strings, and the types of every option — with no silent conversion, and each
mistake a ConfigError naming the file or variable and what to write instead."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any, Final

from agent.config_checks import check_number, check_text
from agent.errors import ConfigError

# a config file is a few KiB; anything far larger is the wrong file (a log, a database)
MAX_CONFIG_BYTES: Final = 1024 * 1024


def type_name(t: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings"}.get(t, "a path string")


def coerce(value: Any, ftype: Any, where: str) -> Any:
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


def from_env(raw: str, ftype: Any, where: str) -> Any:
    if ftype is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: must be true or false, got {raw!r}")
    if ftype is list:  # comma-separated in the environment
        return [part.strip() for part in raw.split(",") if part.strip()]
    if ftype in (int, float):
        try:  # int() also refuses more than 4,300 digits with a ValueError
            return ftype(raw.strip())
        except ValueError:
            raise ConfigError(f"{where}: must be {type_name(ftype)}, got {raw[:40]!r}") from None
    return coerce(raw, ftype, where)


def generic_problem(value: Any) -> str | None:
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
