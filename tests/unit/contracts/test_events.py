"""The event registry against the product's source: every type the agent, the drivers, the
kiosk or the simulators emit or read is registered, every registered type is emitted
somewhere, and the outbox's priorities come from the registry with no rule that ranks
nothing."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest

from agent.contracts import events
from agent.envelope import default_priority

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("agent", "drivers", "kiosk", "simulators")
REGISTRY_FILE = ROOT / "agent" / "contracts" / "events.py"
# a whole event type (a family prefix ends with "." and is not one)
_TYPE = re.compile(r"o2o\.[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")
# what hands an event type to the outbox or the bus: the capture callbacks the producers are
# given (emit, capture, record, or a private _capture), the envelope's constructor, the store link's throttled
# reports, and a raw bus request ({"type": T, "data": D})
_EMITTERS = {"emit", "capture", "record", "make_pending", "Throttled"}
_CONSTANTS = {name: value for name, value in vars(events).items()
              if name.isupper() and isinstance(value, str) and _TYPE.fullmatch(value)}


def _sources() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")
                  if p != REGISTRY_FILE)


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "o2o...." (a file's own constant for a type)."""
    out: dict[str, str] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) \
                and isinstance(value.value, str):
            out[target.id] = value.value
    return out


def _resolve(node: ast.expr, local: dict[str, str]) -> str | None:
    """The event type an expression names: a literal, the file's own constant, or a
    registry constant (imported by name or read as events.NAME)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return local.get(node.id) or _CONSTANTS.get(node.id)
    if isinstance(node, ast.Attribute):
        return _CONSTANTS.get(node.attr)
    return None


def _scan() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(types emitted -> where, type literals anywhere -> where)."""
    emitted: dict[str, list[str]] = {}
    literals: dict[str, list[str]] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        local = _module_strings(tree)
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            found: str | None = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _TYPE.fullmatch(node.value):
                literals.setdefault(node.value, []).append(where)
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else \
                    func.id if isinstance(func, ast.Name) else ""
                if name.lstrip("_") in _EMITTERS:
                    found = _resolve(node.args[0], local)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "type":
                        found = _resolve(value, local)
            if found is not None and _TYPE.fullmatch(found):
                emitted.setdefault(found, []).append(where)
    return emitted, literals


def test_every_type_the_product_emits_or_reads_is_registered() -> None:
    emitted, literals = _scan()
    unknown = {t: w for t, w in {**literals, **emitted}.items() if t not in events.REGISTRY}
    assert not unknown, f"event types missing from agent/contracts/events.py: {unknown}"


def test_every_registered_type_is_emitted_somewhere() -> None:
    emitted, _ = _scan()
    never = sorted(set(events.REGISTRY) - set(emitted))
    assert not never, f"registered but emitted nowhere (dead entries): {never}"


def test_the_scan_sees_emitters_by_constant_and_by_literal() -> None:
    """The scan itself: a type handed over by constant, by a file's own constant and in a
    raw bus request are all found (else the tests above could pass by seeing nothing)."""
    emitted, _ = _scan()
    assert len(emitted) >= 20
    assert events.AGENT_STORE_DB_QUARANTINED in emitted  # a file's own Final constant
    assert events.KIOSK_SERVE in emitted  # a raw {"type": ...} request


def test_registry_entries_name_themselves_and_have_a_typed_payload() -> None:
    assert set(_CONSTANTS.values()) == set(events.REGISTRY)
    for name, spec in events.REGISTRY.items():
        assert spec.name == name
        assert typing.is_typeddict(spec.payload), name
        assert 0 <= spec.priority <= 9


def test_priorities_come_from_the_registry() -> None:
    for name, spec in events.REGISTRY.items():
        assert default_priority(name) == spec.priority, name
    # what a shopper waits on outranks a tap, which outranks beacon telemetry
    assert default_priority(events.KIOSK_CHECKIN) > default_priority(events.NFC_TAP) \
        > default_priority(events.BLE_BEACON_HEALTH)


@pytest.mark.parametrize(("prefix", "priority"), events.FAMILY_PRIORITY)
def test_no_family_rule_is_dead(prefix: str, priority: int) -> None:
    """Each family rule ranks a registered sibling alike: a rule for a family nobody emits
    (as "o2o.ble.tlm" and "o2o.telemetry" once were) fails here."""
    siblings = [s for n, s in events.REGISTRY.items() if n.startswith(prefix)]
    assert siblings, f"{prefix} names no registered type"
    assert priority in {s.priority for s in siblings}
    assert default_priority(prefix + "from-a-bus-client") == priority


def test_a_type_outside_every_family_is_normal() -> None:
    assert default_priority("store.pos.sale") == events.PRIORITY_NORMAL
