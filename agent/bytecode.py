"""Bytecode for what the device runs, and nothing else: `python -m agent.bytecode` (install.sh).

pip compiles every module it installs. On the Pi most of them never run: numpy's test suites,
hundreds of pygments lexers, the parts of aiohttp, textual and cryptography no touchpoint
uses — ~25 MB of .pyc in the runtime venv (bench-install). install.sh installs with
`--no-compile` and then runs this as root: it imports every module of the program's own
packages and the stacks they load on demand (the camera's OpenCV, the kiosk's images and
served page, the radios), and Python writes the bytecode of each as it imports it. A module
first imported later by the agent (running as a user that cannot write the venv) is compiled
in memory: it works, only its import is slower.

`--list` prints the source files imported, relative to the sys.path entry they came from
(the benchmark compiles the same files in a venv for another machine).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import sysconfig
from pathlib import Path
from typing import Final

# the program's packages: the kiosk's is optional (the agent runs without it), and walked by
# name, not imported here (the agent's layer does not import the kiosk's)
OWN: Final = ("agent", "drivers", "kiosk")
# imported inside functions, when their touchpoint is enabled
ON_DEMAND: Final = (
    "cv2", "numpy", "zxingcpp", "pyzbar.pyzbar", "PIL.Image", "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin", "qrcode", "qrcode.image.pil", "textual_serve.server",
    "aiohttp.web", "bleak", "nfc", "nfc.clf.udp", "dbus_fast.aio",
)


def import_all() -> list[str]:
    """Import everything the device runs; the modules that could not be (named why)."""
    failed = []
    for name in OWN:
        try:
            package = importlib.import_module(name)
        except ImportError as exc:
            failed.append(f"{name}: {exc}")
            continue
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.endswith("__main__"):
                continue  # would run a command
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # a module that cannot load is named
                failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    for name in ON_DEMAND:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional stack absent on this device
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return failed


def imported_sources() -> list[str]:
    """The .py files of the modules imported from the venv (not Python's own library),
    relative to site-packages, or to the tree for the program's own when run from one."""
    places = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    for name in OWN:
        module = sys.modules.get(name)
        if module is not None and module.__file__:
            places.add(str(Path(module.__file__).parents[1]))
    roots = sorted((Path(p).resolve() for p in places if p and Path(p).is_dir()),
                   key=lambda p: -len(p.parts))
    found = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        for root in roots:
            if path.is_relative_to(root):
                found.add(str(path.relative_to(root)))
                break
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.dont_write_bytecode = "--list" in args
    failed = import_all()
    if "--list" in args:
        print("\n".join(imported_sources()))
    for line in failed:
        print(f"not imported (compiled when first used): {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
