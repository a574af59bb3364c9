"""The faults a scenario injects, each made the way it happens in a store (see the README's
"The simulated store"): what starts it and what ends it, on a running `Stage`."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from pathlib import Path

from simulators.nfc_tags import TagEmulator
from simulators.scenario.model import FAULT_WORDS, Fault
from simulators.scenario.stage import Stage

Action = Callable[[], None] | None


class Faults:
    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self._filler: Path | None = None

    def apply(self, f: Fault, starting: bool) -> str:
        """Start or end `f`; returns what happened, for the log."""
        st = self.stage
        actions: dict[str, tuple[Action, Action]] = {
            "broker-down": (st.broker.stop if st.broker else None,
                            st.broker.start if st.broker else None),
            "network-cut": (st.link.cut if st.link else None,
                            st.link.restore if st.link else None),
            "nfc-unplugged": (self._unplug_nfc, self._plug_nfc),
            "camera-gone": (st.camera.unplug if st.camera else None,
                            st.camera.plug if st.camera else None),
            "disk-full": (self._fill_disk, self._free_disk),
            "clock-jump": (lambda: self._jump(f.shift_min), None),
            "bluetoothd-restart": (None, None),  # on the radio's loop, in its time
        }
        action = actions[f.kind][0 if starting else 1]
        if action is not None:
            action()
        begins, ends = FAULT_WORDS[f.kind]
        if f.kind == "clock-jump":
            return f"fault: {begins} by {f.shift_min:+g} min"
        if starting:
            return f"fault: {begins}" + (f" for {f.minutes:g} min" if f.minutes else "")
        return f"fault over: {ends}"

    def _unplug_nfc(self) -> None:
        if self.stage.nfc is not None:
            self.stage.nfc.stop()
            self.stage.nfc = None

    def _plug_nfc(self) -> None:
        self.stage.nfc = TagEmulator(self.stage.nfc_port).start()

    def _fill_disk(self) -> None:
        """Write until the agent's tmpfs has not a byte left."""
        self._filler = self.stage.state / "filler"
        fh = self._filler.open("wb", buffering=0)
        try:
            for size in (1 << 20, 4096, 1):  # big steps, then the last crumbs
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            with contextlib.suppress(OSError):
                fh.close()

    def _free_disk(self) -> None:
        if self._filler is not None:
            self._filler.unlink(missing_ok=True)

    def _jump(self, minutes: float) -> None:
        self.stage.clock_offset += minutes * 60
        self.stage.clock_file.write_text(f"{self.stage.clock_offset}\n")
