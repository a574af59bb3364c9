"""The kiosk as its own headless process for the kiosk benchmark: writes one line
"<monotonic time> <what>" each time a screen change has been painted. It does what the served
kiosk does on each paint for the page's pictures (kiosk/web_pictures.py), its messages
encoded as the web driver encodes them and dropped."""

from __future__ import annotations

import json
import sys

from kiosk.app import KioskApp
from kiosk.settings import load_settings
from kiosk.web_pictures import PictureOverlay


def _encoded(meta: dict[str, object]) -> None:
    """What the web driver does with a meta packet, short of writing it."""
    json.dumps(meta).encode()


def main() -> None:
    cfg_path, out_path = sys.argv[1], sys.argv[2]
    cols, _, rows = (sys.argv[3] if len(sys.argv) > 3 else "120x40").partition("x")
    app = KioskApp(load_settings(cfg_path))  # as the kiosk command reads them
    with open(out_path, "w", buffering=1) as out:
        app.on_shown = lambda t, what: out.write(f"{t:.6f} {what}\n")
        app.pictures = PictureOverlay(_encoded)
        app.run(headless=True, size=(int(cols), int(rows)))


if __name__ == "__main__":
    main()
