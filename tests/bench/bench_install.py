"""Install size on the Pi: the runtime venv's packages for aarch64, measured from PyPI.

For each Python asked (3.11 and 3.13 by default) the aarch64 wheels of the device's
dependencies are downloaded (resolved as pip resolves them on the Pi; a dependency with no
wheel at all, only pure-Python source, is built here), each is installed into an empty
target directory (`pip install --target --no-deps`) with the project's own wheel, and the
directory is measured as `du` does, plus the venv itself. Now: as systemd/install.sh leaves
the runtime venv — installed with --no-compile, then the bytecode of the modules the program
imports (listed by `python -m agent.bytecode --list` on this machine, compiled by a Python of
the target's version), in a venv without pip. The baseline, measured in the same run: the
dependency list of an earlier revision of pyproject.toml (`--baseline`, by default the one
before the device's dependencies were trimmed), every module compiled as pip does, in a venv
with pip (and setuptools on 3.11), as install.sh made it then.

Then, for every dependency whose aarch64 wheel is not pure Python, whether PyPI has an
armv7l wheel for 32-bit Raspberry Pi OS (install.sh takes Debian's packages there).

    python3 dev.py bench-install [--python 3.11 3.13] [--baseline REV]

Needs PyPI (pip's own index settings apply).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]
AARCH64 = [
    "manylinux2014_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_36_aarch64",
    "linux_aarch64",
]
ARMV7L = ["manylinux2014_armv7l", "manylinux_2_31_armv7l", "manylinux_2_36_armv7l", "linux_armv7l"]
GOAL_MB = 250
BASELINE = "256f0c8~1"  # the last pyproject.toml with psycopg and sqlite-utils on the device


def _platforms(tags: list[str]) -> list[str]:
    return [a for t in tags for a in ("--platform", t)]


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PIP, "-q", *args], capture_output=True, text=True)


def dependencies(rev: str | None) -> list[str]:
    text = (
        (ROOT / "pyproject.toml").read_text()
        if rev is None
        else subprocess.run(
            ["git", "show", f"{rev}:pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return list(tomllib.loads(text)["project"]["dependencies"])


def own_wheel(into: Path) -> Path:
    """The project's wheel, built from the committed tree (HEAD)."""
    src = into / "o2o-edge"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    res = _pip("wheel", "--no-deps", "-w", str(into), str(src))
    if res.returncode:
        sys.exit(f"building the project's wheel failed:\n{res.stderr[-2000:]}")
    (wheel,) = into.glob("o2o_edge-*.whl")
    return wheel


def download(reqs: list[str], python: str, into: Path, built: Path) -> None:
    """aarch64 wheels of `reqs` and everything they need; what PyPI has only as source is
    built here (pure Python, so the wheel fits any platform) and offered to pip again."""
    for _ in range(10):
        res = _pip(
            "download",
            "--only-binary=:all:",
            *_platforms(AARCH64),
            "--python-version",
            python,
            "--find-links",
            str(built),
            "-d",
            str(into),
            *reqs,
        )
        if res.returncode == 0:
            return
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", res.stderr)
        if not missing:
            sys.exit(f"pip download failed:\n{res.stderr[-2000:]}")
        name = missing.group(1)
        made = _pip("wheel", "--no-deps", "--no-binary", name, "-w", str(built), name)
        if made.returncode or not any(
            p.name.endswith("-none-any.whl") for p in built.glob("*.whl")
        ):
            sys.exit(f"{name}: no aarch64 wheel on PyPI and its source is not pure Python")
    sys.exit("pip download kept failing")


def du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            total += st.st_blocks * 512
    return total / 1e6


def install(wheels: list[Path], python: str, target: Path, compile_all: bool = True) -> float:
    for wheel in wheels:
        res = _pip(
            "install",
            *(() if compile_all else ("--no-compile",)),
            "--no-deps",
            "--only-binary=:all:",
            *_platforms(AARCH64),
            "--python-version",
            python,
            "--target",
            str(target),
            "--upgrade",
            str(wheel),
        )
        if res.returncode:
            sys.exit(f"installing {wheel.name} failed:\n{res.stderr[-2000:]}")
    return du_mb(target)


def biggest(target: Path, n: int = 6) -> str:
    sizes: dict[str, float] = {}
    for entry in target.iterdir():
        if entry.is_dir() and not entry.name.endswith(".dist-info"):
            key = entry.name.removesuffix(".libs").split("-")[0]
            sizes[key] = sizes.get(key, 0.0) + du_mb(entry)
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v:.0f}" for k, v in top)


def armv7l_gaps(wheels: list[Path], python: str, scratch: Path) -> list[str]:
    gaps = []
    for wheel in wheels:
        if wheel.name.endswith("-none-any.whl") or wheel.name.startswith("o2o_edge-"):
            continue
        name = wheel.name.split("-")[0]
        res = _pip(
            "download",
            "--no-deps",
            "--only-binary=:all:",
            *_platforms(ARMV7L),
            "--python-version",
            python,
            "-d",
            str(scratch),
            name,
        )
        if res.returncode:
            gaps.append(name)
    return gaps


def venv_mb(scratch: Path, with_pip: bool) -> float:
    """`python3 -m venv` itself: with pip (and setuptools on 3.11) as made, or without."""
    python = shutil.which("python3") or sys.executable
    target = scratch / f"bare-venv-{with_pip}"
    subprocess.run([python, "-m", "venv", *(() if with_pip else ("--without-pip",)),
                    str(target)], check=True)
    return du_mb(target)


def used_sources() -> list[str]:
    """What install.sh compiles (agent/bytecode.py): the modules the program imports, as
    files relative to site-packages (or to the tree, for its own), listed on this machine."""
    res = subprocess.run([sys.executable, "-m", "agent.bytecode", "--list"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return res.stdout.split()


def interpreter(version: str) -> str:
    """A Python of that version to compile with (its bytecode is the target's), else ours."""
    candidates = [str(p) for p in sorted(Path("/root/.pyenv/versions").glob(
        f"{version}.*/bin/python"))]
    candidates += [found for found in (shutil.which(f"python{version}"),) if found]
    for python in candidates:
        res = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip() == version:
            return python
    return sys.executable


def compile_used(target: Path, used: list[str], python: str) -> tuple[int, int]:
    """Compile the used modules' files found in `target`; (compiled, not found there)."""
    present = [str(target / f) for f in used if (target / f).is_file()]
    for i in range(0, len(present), 200):
        subprocess.run([interpreter(python), "-m", "py_compile", *present[i : i + 200]],
                       check=True)
    return len(present), len(used) - len(present)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", nargs="+", default=["3.11", "3.13"])
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="o2o-install-") as tmp:
        scratch = Path(tmp)
        own = own_wheel(scratch / "own")
        used = used_sources()
        bare, piped = venv_mb(scratch, False), venv_mb(scratch, True)
        sets = {
            f"baseline ({args.baseline})": dependencies(args.baseline),
            "now (HEAD's pyproject.toml)": dependencies(None),
        }
        print(
            f"runtime venv for aarch64; goal <= {GOAL_MB} MB. Baseline: its packages as pip "
            f"installs them (.pyc of every module) in a venv with pip ({piped:.0f} MB); now: "
            f"as install.sh leaves them (--no-compile, then .pyc of the {len(used)} modules "
            f"the program imports, agent/bytecode.py) in a venv without pip ({bare:.0f} MB)"
        )
        for python in args.python:
            results = {}
            for i, (label, reqs) in enumerate(sets.items()):
                where = scratch / f"{python}-{i}"
                download(reqs, python, where / "wheels", scratch / "built")
                wheels = [*sorted((where / "wheels").glob("*.whl")), own]
                last = i == len(sets) - 1
                mb = install(wheels, python, where / "target", compile_all=not last)
                note = ""
                if last:
                    done, missing = compile_used(where / "target", used, python)
                    mb = du_mb(where / "target")
                    note = f"; {done} modules compiled" + (
                        f" ({missing} listed here are not in these wheels)" if missing else "")
                total = mb + (bare if last else piped)
                results[label] = total
                print(
                    f"  Python {python}, {label}: {total:.0f} MB ({mb:.0f} MB of packages, "
                    f"{len(wheels)} wheels{note}); largest (MB): {biggest(where / 'target')}",
                    flush=True,
                )
                if last:
                    gaps = armv7l_gaps(wheels, python, scratch / f"armv7l-{python}")
                    print(
                        f"  Python {python}: no armv7l wheel on PyPI for "
                        f"{', '.join(gaps) or 'none'}",
                        flush=True,
                    )
            base, now = results.values()
            print(
                f"  Python {python}: now / baseline = {now / base:.2f}; "
                f"{'within' if now <= GOAL_MB else 'over'} the goal",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
