"""What `pip install o2o-edge` brings: what the device imports and nothing more. The reference
collector's PostgreSQL driver is the `collector` extra, and without it `collect` says in one
line what to install."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "drivers", "kiosk", "simulators")
# what only an extra brings, and the one module allowed to import it
EXTRA_ONLY = {"psycopg": "agent/collector/store.py"}


def _project() -> dict[str, object]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project, dict)
    return project


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(req).name).lower()


def _closure(reqs: list[str]) -> set[str]:
    """The distributions `reqs` install, their own requirements followed (markers for this
    machine, extras as asked)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in reqs]
    while todo:
        req = todo.pop()
        name = _name(str(req))
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if name in seen:
            continue
        seen.add(name)
        for dep in md.requires(name) or []:
            sub = Requirement(dep)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in ("", *req.extras)):
                sub.marker = None
                todo.append(sub)
    return seen


def _imports() -> dict[str, set[str]]:
    """Every third-party top-level module the packages import (at any depth, in functions
    too), with the files importing it."""
    found: dict[str, set[str]] = {}
    own = set(PACKAGES)
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in own and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_device_dependencies_provide_every_module_the_packages_import() -> None:
    runtime = _closure(list(_project()["dependencies"]))  # type: ignore[call-overload]
    providers = md.packages_distributions()
    missing = {}
    for module, files in _imports().items():
        if module in EXTRA_ONLY:
            assert files == {EXTRA_ONLY[module]}, f"{module} imported outside its extra's module"
            continue
        dists = {_name(d) for d in providers.get(module, [])}
        if not dists & runtime:
            missing[module] = sorted(files)
    assert not missing, f"imported, but no runtime dependency installs them: {missing}"


def test_the_collector_driver_and_test_tools_are_extras_not_device_dependencies() -> None:
    project = _project()
    runtime = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    for name in ("psycopg", "sqlite-utils", "pytest", "mypy", "playwright", "ibeacon-ble"):
        assert name not in runtime
    assert {_name(r) for r in extras["collector"]} == {"psycopg"}
    assert "o2o-edge[unit,collector]" in extras["test"]


def test_collect_into_postgresql_without_the_extra_says_what_to_install(
        tmp_path: Path) -> None:
    # psycopg made unimportable, as on a device installed without the extra
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from agent.cli.main import main\n"
            "sys.exit(main(['collect', '--db', 'postgresql://u@127.0.0.1:9/x', "
            "'--broker', 'mqtt://127.0.0.1:9', '--duration', '1']))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "pip install 'o2o-edge[collector]'" in lines[0]
