"""Loaded by a simulated agent process (its PYTHONPATH starts with this folder) so that the
scenario can step its wall clock the way NTP does after a bad boot: `time.time()` and
`time.time_ns()` are shifted by the number of seconds in the file named by
O2O_SIM_CLOCK_FILE; the monotonic clock is left alone, exactly as a real clock step leaves it.

(libfaketime would do this below Python, but its 0.9.10 release breaks Python 3.11's
`time.sleep` when the monotonic clock is excluded.)"""

from __future__ import annotations

import os
import time

_FILE = os.environ.get("O2O_SIM_CLOCK_FILE", "")

if _FILE:
    _real_time = time.time
    _real_ns = time.time_ns
    _mono = time.monotonic
    _state = {"offset": 0.0, "checked": -1.0}

    def _offset() -> float:
        now = _mono()
        if now - _state["checked"] >= 0.05:  # a stat per 50 ms, not per call
            _state["checked"] = now
            try:
                with open(_FILE) as fh:
                    _state["offset"] = float(fh.read().strip() or 0)
            except (OSError, ValueError):
                pass
        return _state["offset"]

    def _time() -> float:
        return _real_time() + _offset()

    def _time_ns() -> int:
        return _real_ns() + int(_offset() * 1e9)

    time.time = _time
    time.time_ns = _time_ns
