"""The kiosk as its own headless process for the kiosk benchmark: writes one line
"<monotonic time> <what>" each time a screen change has been painted."""

from __future__ import annotations

import sys

from agent.config import load_config
from kiosk.app import KioskApp


def main() -> None:
    cfg_path, out_path = sys.argv[1], sys.argv[2]
    app = KioskApp(load_config(cfg_path))
    with open(out_path, "w", buffering=1) as out:
        app.on_shown = lambda t, what: out.write(f"{t:.6f} {what}\n")
        app.run(headless=True, size=(120, 40))


if __name__ == "__main__":
    main()
