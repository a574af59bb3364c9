"""The effective configuration shown to a person (`config show`): as a dict of tables or as
TOML, secrets masked. The TOML is written by tomli-w, so any value reads back as it is —
quotes, backslashes and non-ASCII text included."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import tomli_w

from agent.config_schema import SECTIONS, Config

SECRET_KEYS: Final = frozenset({"password"})
MASK: Final = "********"
# what a TOML comment cannot hold (control characters but tab, and lone surrogates, which a
# file name that is not UTF-8 carries): the configuration's source is shown with these escaped
_NOT_IN_COMMENT: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def config_as_dict(cfg: Config, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = getattr(cfg, name)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            if isinstance(v, Path):
                v = str(v)
            if mask_secrets and f.name in SECRET_KEYS and v:
                v = MASK
            values[f.name] = v
        out[name] = values
    if mask_secrets:
        parts = urlsplit(cfg.mqtt.url)
        if parts.password:
            out["mqtt"]["url"] = cfg.mqtt.url.replace(f":{parts.password}@", f":{MASK}@")
    return out


def _comment_text(text: str) -> str:
    return _NOT_IN_COMMENT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render_toml(cfg: Config) -> str:
    """The effective configuration as TOML, secrets masked."""
    header = f"# effective configuration (from {_comment_text(cfg.source)})\n\n"
    return header + tomli_w.dumps(config_as_dict(cfg))
