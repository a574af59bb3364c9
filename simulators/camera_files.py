"""Camera input for a simulated store: frames written as an MJPG AVI or a PNG sequence,
which cv2.VideoCapture then plays like a device (H.264 cannot be written here)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def write_video(path: Path, frames: Iterable[Any], fps: float = 15.0) -> int:
    """MJPG AVI of BGR frames (all the size of the first); returns the frame count."""
    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"cannot write {path} as MJPG AVI")
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n


def write_sequence(folder: Path, frames: Iterable[Any]) -> str:
    """PNG files frame_0000.png, ...; returns the pattern VideoCapture opens."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), frame)
    return str(folder / "frame_%04d.png")


def blank(size: tuple[int, int], level: int = 90) -> Any:
    """A frame with nothing to read (the counter with nobody at it)."""
    w, h = size
    return np.full((h, w, 3), level, np.uint8)
