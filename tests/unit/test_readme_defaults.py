"""The README states the configuration's defaults in two places: the commented reference block
(a value, or a comment saying "default ...") and the prose ("`[kiosk] idle_s` (45 s)"). Both
must say what the code does; a default changed in the code and not in the README fails here."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.config_schema import SECTIONS, Config

README = Path(__file__).parents[2] / "README.md"

# keys whose built-in default depends on the machine: the README names the rule
MACHINE_DEFAULTS = {("device", "id"): "the host name"}


def _defaults() -> dict[str, dict[str, Any]]:
    cfg = Config()
    return {
        name: {
            f.name: getattr(getattr(cfg, name), f.name)
            for f in dataclasses.fields(getattr(cfg, name))
        }
        for name in SECTIONS
    }


def _block() -> str:
    (block,) = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    return block


def _comments(block: str) -> dict[tuple[str, str], str]:
    """Each key's comment text (the lines from the key to the next key or table)."""
    out: dict[tuple[str, str], str] = {}
    table, key = "", ""
    for line in block.splitlines():
        if m := re.match(r"\[(\w+)\]", line):
            table, key = m[1], ""
            continue
        if m := re.match(r"(\w+) = ", line):
            key = m[1]
            out[(table, key)] = ""
        if key and "#" in line:
            out[(table, key)] += " " + line.split("#", 1)[1].strip()
    return out


def _said_default(comment: str) -> str | None:
    """What a comment gives as the default ("default X; ...", "(default: none)"), if any."""
    m = re.search(r"default:? ([^;)]+?)(?:[;)]|, else|$)", comment)
    return m[1].strip() if m else None


def _as_code_value(said: str, env_dirs: dict[str, Path]) -> Any:
    if said == "none":
        return []
    if said.startswith('"') and said.endswith('"'):
        return said[1:-1]
    for var, path in env_dirs.items():
        if said.startswith(f"${var}/"):
            return path / said[len(var) + 2 :]
    return said


@pytest.fixture
def env_dirs(tmp_path: Path) -> dict[str, Path]:
    # the suite's autouse fixture points these into tmp_path; the README names them
    return {"XDG_STATE_HOME": tmp_path / "state", "XDG_RUNTIME_DIR": tmp_path / "run"}


def test_the_reference_block_states_every_default_as_the_code_has_it(
    env_dirs: dict[str, Path],
) -> None:
    block = _block()
    values = tomllib.loads(block)
    comments = _comments(block)
    defaults = _defaults()
    wrong = []
    for (table, key), comment in comments.items():
        code = defaults[table][key]
        said = _said_default(comment)
        if (table, key) in MACHINE_DEFAULTS:
            assert said == MACHINE_DEFAULTS[(table, key)], (table, key, comment)
            continue
        if values[table][key] == code:
            continue  # the example is the default ("default: ..." then says what it does)
        shown = _as_code_value(said, env_dirs) if said is not None else values[table][key]
        if isinstance(code, Path):
            shown = Path(shown)
        if shown != code:
            wrong.append(f"[{table}] {key}: README says {shown!r}, the code {code!r}")
    assert not wrong, "\n".join(wrong)
    # every key of the code is in the block, so none has an unstated default
    assert {k for k in comments} == {(t, k) for t, keys in defaults.items() for k in keys}


def _prose() -> str:
    text = README.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # the code blocks are checked above
    return re.sub(r"\s+", " ", text)


UNITS = {"s": 1.0, "min": 60.0}


def test_the_prose_states_defaults_as_the_code_has_them() -> None:
    defaults = _defaults()
    unique = {}
    for table, keys in defaults.items():
        for key in keys:
            unique.setdefault(key, []).append(table)
    prose = _prose()
    checked = []
    # "`[kiosk] idle_s` (45 s)" and, where the table is clear, "`idle_warning_s` (15 s)"
    for m in re.finditer(r"`(?:\[(\w+)\] )?(\w+)` \((\d+(?:\.\d+)?) ?(s|min)\)", prose):
        table, key, number, unit = m.groups()
        if table is None:
            if len(unique.get(key, [])) != 1:
                continue
            table = unique[key][0]
        code = defaults[table][key]
        checked.append(key)
        assert float(number) * UNITS[unit] == float(code) * (
            60.0 if key.endswith("_min") else 1.0
        ), (m[0], code)
    # "default `[kiosk] serve`, 127.0.0.1:8765"
    for m in re.finditer(r"default `\[(\w+)\] (\w+)`, ([^\s)]+)", prose):
        table, key, said = m.groups()
        checked.append(key)
        assert said == str(defaults[table][key]), (m[0], defaults[table][key])
    assert {"idle_s", "idle_warning_s", "serve"} <= set(checked), checked
    # the deployment section: where the metrics are, how often telemetry goes
    m = re.search(r"Metrics for Prometheus are on `([^`/]+)/metrics`", prose)
    assert m is not None and m[1] == defaults["metrics"]["listen"]
    assert (
        "`…/telemetry` every minute" in prose and defaults["metrics"]["telemetry_interval_s"] == 60
    )
