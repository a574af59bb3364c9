"""The QR source's debouncing and event content over frames (no camera)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.config import Config, QrConfig
from agent.qr_source import QrSource
from drivers.qr.camera import Grabbed
from drivers.qr.decoders import Code


class _Script:
    """A decoder that 'sees' the payloads scripted for each frame."""

    def __init__(self, frames: list[list[bytes]]) -> None:
        self.frames = frames
        self.i = 0

    def decode(self, grey: Any) -> list[Code]:
        found = self.frames[self.i]
        self.i += 1
        return [Code(p, "script") for p in found]


def test_same_code_within_the_window_of_its_last_sighting_is_one_scan() -> None:
    link, text = b"https://shop.example/p/1", b"Table 4"
    # the link held for 10 s (seen every second), gone 4 s, back; text once in between
    script = [[link]] * 10 + [[]] * 2 + [[text]] + [[]] * 1 + [[link]]
    clock = [1000.0]
    out: list[tuple[str, dict[str, Any]]] = []
    src = QrSource(Config(qr=QrConfig(domains=["shop.example"], debounce_s=3.0)),
                   lambda t, d: out.append((t, d)), decoder=_Script(script),
                   clock=lambda: clock[0])
    grey = np.zeros((10, 10), np.uint8)
    for i in range(len(script)):
        src.on_frame(Grabbed(grey, i + 1, clock[0]), lambda t, d: out.append((t, d)))
        clock[0] += 1.0
    assert [d["class"] for _, d in out] == ["product", "text", "product"]
    assert {t for t, _ in out} == {"o2o.qr.scan"}
    assert src.counts["debounced"] == 9 and src.counts["scans"] == 3
    assert "Table 4" not in str(out)  # plain text is reported by length only
