"""Baseline process for the BLE CPU-share benchmark: bare bleak, an active scan, and a
detection callback that only counts. What the agent costs on top of this is ours."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any


async def _main() -> int:
    from bleak import BleakScanner

    heard = 0

    def counted(device: Any, adv: Any) -> None:
        nonlocal heard
        heard += 1

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with BleakScanner(detection_callback=counted, scanning_mode="active"):
        await stop.wait()
    print(heard, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
