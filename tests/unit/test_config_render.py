"""`config show`'s TOML (agent/config_render.py) is TOML: whatever a value holds — quotes,
backslashes, newlines, control characters, any Unicode — tomllib reads back the same values,
and a configuration shown is a configuration file that loads to the same configuration."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import Config, QrConfig, config_as_dict, load_config, render_toml
from agent.config_schema import SECTIONS

# what breaks hand-made TOML, mixed with any character a Python string can hold
_TRICKY = st.sampled_from(['"', "'", "\\", "\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85",
                           "\u2028", "#", "[", "]", "=", "é", "日", "🛒"])
_TEXT = st.text(st.one_of(_TRICKY, st.characters(exclude_categories=["Cs"])), max_size=30)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """The defaults with every string and list-of-strings option drawn."""
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.type == "str":
                changes[f.name] = draw(_TEXT)
            elif f.type == "list[str]":
                changes[f.name] = draw(st.lists(_TEXT, max_size=3))
        sections[name] = cls(**changes)
    # a file name may hold anything but NUL, lone surrogates included (not UTF-8 on disk)
    source = draw(st.text(st.one_of(_TRICKY, st.characters(exclude_characters="\x00"))))
    return Config(source=source, **sections)


@settings(max_examples=300, deadline=None)
@given(configs())
def test_any_value_reads_back_as_it_was(cfg: Config) -> None:
    shown = render_toml(cfg)
    shown.encode("utf-8")  # printable: no lone surrogate reaches stdout
    assert tomllib.loads(shown) == config_as_dict(cfg)


def test_a_list_item_with_a_quote_or_a_backslash() -> None:
    # the hand-made writer quoted list items without escaping them
    cfg = Config(qr=QrConfig(product_paths=['/p"x/', "/q\\d/"]))
    assert tomllib.loads(render_toml(cfg))["qr"]["product_paths"] == ['/p"x/', "/q\\d/"]


def test_a_config_file_name_with_a_newline_stays_in_the_comment() -> None:
    # the header comment carried the file name as it was: a newline in it started a TOML line
    cfg = Config(source='/tmp/x\n[mqtt]\nurl = "mqtt://evil:1883"\n/config.toml')
    shown = render_toml(cfg)
    assert shown.splitlines()[0].startswith("# effective configuration (from /tmp/x\\u000a")
    assert tomllib.loads(shown)["mqtt"]["url"] == "mqtt://127.0.0.1:1883"


def test_what_config_show_prints_loads_to_the_same_configuration(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    first = tmp_path / "config.toml"
    first.write_text(block)
    cfg = load_config(str(first), {})
    assert not cfg.mqtt.password  # a masked secret would not load back as it was
    again = tmp_path / "shown.toml"
    again.write_text(render_toml(cfg))
    assert load_config(str(again), {}) == dataclasses.replace(cfg, source=str(again),
                                                               path=str(again))
