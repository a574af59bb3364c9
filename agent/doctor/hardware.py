"""Doctor checks of the touchpoints: Bluetooth (BlueZ, adapter, passive scanning), the NFC
reader (found, not claimed by the kernel), the camera (opens and gives frames), zbar."""

from __future__ import annotations

import ctypes.util
import re
import stat
import subprocess
import time
from pathlib import Path

from agent.config import Config
from agent.doctor import Finding, fail, ok, skip, warn

SYS = Path("/sys")
PROC = Path("/proc")
BLUEZ_PASSIVE_MIN = (5, 56)  # AdvertisementMonitor (passive scanning) arrived in 5.56


def _bluetoothd() -> list[str] | None:
    """The running bluetoothd's command line, or None."""
    for d in PROC.glob("[0-9]*"):
        try:
            if (d / "comm").read_text().strip() == "bluetoothd":
                return (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
    return None


def _bluez_version() -> tuple[int, int] | None:
    try:
        out = subprocess.run(["bluetoothd", "--version"], capture_output=True, text=True,  # noqa: S607
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"\s*(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _ask_bluez(adapter: str) -> tuple[str, str]:
    """(owner of org.bluez on the system bus, problem) through the scanner's own probe."""
    import asyncio

    from drivers.ble.bluez_probe import BluezProbe

    async def ask() -> tuple[str, str]:
        probe = BluezProbe(adapter or None)
        try:
            owner = await probe.owner()
            return owner, (await probe.problem(owner, active=False)) if owner else ""
        finally:
            probe.close()

    return asyncio.run(ask())


def check_bluetooth(cfg: Config) -> list[Finding]:
    if not cfg.ble.enabled:
        return [skip("bluetooth", "[ble] is not enabled")]
    found: list[Finding] = []
    owner, problem = _ask_bluez(cfg.ble.adapter)
    version = _bluez_version()
    shown = f"{version[0]}.{version[1]}" if version else "(version unknown)"
    if not owner:
        found.append(fail("bluetooth", "BlueZ (bluetoothd) is not running",
                          "apt-get install bluez, then systemctl enable --now bluetooth"))
        return found
    found.append(ok("bluetooth", f"BlueZ {shown} answers on the system bus"))
    cmdline = _bluetoothd() or []
    experimental = any(a in ("-E", "--experimental") for a in cmdline) or re.search(
        r"^\s*Experimental\s*=\s*true", _read("/etc/bluetooth/main.conf"), re.M | re.I)
    if version is not None and version < BLUEZ_PASSIVE_MIN:
        found.append(warn("bluetooth-passive", f"BlueZ {shown} has no passive scanning; the "
                          "agent scans actively", "upgrade BlueZ to 5.56 or newer"))
    elif not experimental:
        found.append(warn(
            "bluetooth-passive", "passive scanning needs BlueZ's experimental features; the "
            "agent falls back to active scanning",
            "set 'Experimental = true' in /etc/bluetooth/main.conf and restart bluetooth"))
    else:
        found.append(ok("bluetooth-passive", "passive scanning is available"))
    if problem == "no Bluetooth adapter" or problem.endswith("is gone"):
        found.append(fail("bluetooth-adapter", problem, "check the Pi's Bluetooth is enabled "
                          "(no dtoverlay=disable-bt) or plug in a USB adapter"))
    elif problem.endswith("is powered off"):
        blocked = any(_read(str(p)).strip() == "bluetooth" and "1" in (
            _read(str(p.parent / "soft")) + _read(str(p.parent / "hard")))
            for p in (SYS / "class/rfkill").glob("rfkill*/type"))
        found.append(fail("bluetooth-adapter", problem, "rfkill unblock bluetooth" if blocked
                          else "bluetoothctl power on (and AutoEnable=true in main.conf)"))
    elif problem:
        found.append(fail("bluetooth-adapter", problem, "systemctl restart bluetooth"))
    else:
        found.append(ok("bluetooth-adapter", "the adapter is present and powered"))
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def check_nfc(cfg: Config) -> list[Finding]:
    if not cfg.nfc.enabled:
        return [skip("nfc", "[nfc] is not enabled")]
    found: list[Finding] = []
    claimed = [m for m in ("pn533_usb", "port100") if (SYS / "module" / m).exists()]
    if claimed:
        found.append(fail("nfc-kernel", f"the kernel's {claimed[0]} driver is loaded and may "
                          "hold the reader", f"rmmod {claimed[0]} and install o2o-edge's "
                          "modprobe blacklist (systemd/install.sh does)"))
    from drivers.errors import DriverError
    from drivers.nfc.reader import open_reader

    try:
        clf = open_reader(cfg.nfc.reader)
    except DriverError as exc:
        what, _, fix = str(exc).partition(": ")
        found.append(fail("nfc", what, fix))
    else:
        found.append(ok("nfc", f"NFC reader found: {clf.device}"))
        clf.close()
    return found


def _not_a_video_source(camera: str) -> str:
    """Why a camera path cannot be opened without hanging or failing ("" when it may be
    tried): OpenCV blocks for ever opening a FIFO."""
    if camera.isdigit() or "%" in camera:  # a camera index, or a numbered image sequence
        return ""
    try:
        mode = Path(camera).stat().st_mode
    except OSError as exc:
        return str(exc.strerror).lower()
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
        return ""
    return "it is not a video file or a camera device"


def check_camera(cfg: Config, wait_s: float = 3.0) -> list[Finding]:
    if not cfg.qr.enabled:
        return [skip("camera", "[qr] is not enabled")]
    from drivers.qr.camera import open_capture

    problem = _not_a_video_source(cfg.qr.camera)
    if problem:
        return [fail("camera", f"cannot open the camera {cfg.qr.camera!r}: {problem}",
                     "set [qr] camera to a camera (0, /dev/video0) or a video file")]
    cap = open_capture(cfg.qr.camera)
    try:
        if not cap.isOpened():
            return [fail("camera", f"cannot open the camera {cfg.qr.camera!r}",
                         "plug it in, check 'ls /dev/video*', and set [qr] camera")]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            good, frame = cap.read()
            if good and frame is not None:
                h, w = frame.shape[:2]
                return [ok("camera", f"camera {cfg.qr.camera!r} gives {w}x{h} frames")]
        return [fail("camera", f"the camera {cfg.qr.camera!r} opens but gives no frames",
                     "another program may be using it; unplug and plug it in again")]
    finally:
        cap.release()


def check_zbar(cfg: Config) -> list[Finding]:
    if ctypes.util.find_library("zbar"):
        return [ok("zbar", "the zbar library is installed")]
    if cfg.qr.decoder == "zbar":
        return [fail("zbar", "[qr] decoder = \"zbar\" but the zbar library is missing",
                     "apt-get install libzbar0, or use decoder = \"robust\"")]
    return [warn("zbar", "the zbar library is missing (only needed for decoder = \"zbar\")",
                 "apt-get install libzbar0")]
