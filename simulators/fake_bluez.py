"""A fake BlueZ on a private D-Bus: unmodified bleak scans it as if it were a real adapter.

`PrivateBus` runs a `dbus-daemon` on a socket in a temporary directory; pointing
DBUS_SYSTEM_BUS_ADDRESS at it makes bleak (and anything else) use it as the system bus.
`FakeBlueZ` owns `org.bluez` there and exports what bleak's BlueZ backend reads: an object
manager at `/`, an adapter `org.bluez.Adapter1` and one `org.bluez.Device1` per advertiser,
whose properties change with every advertisement while discovery is on.

(No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from the
annotations of the exported methods and properties.)
"""

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_property, method

from simulators.errors import MissingProgram
from simulators.sockpath import fitting_socket

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class BusUnavailable(MissingProgram):
    """dbus-daemon is not installed (apt-get install dbus)."""


class PrivateBus:
    """A dbus-daemon of our own, on a unix socket in a temporary directory."""

    def __init__(self, parent: Path | None = None) -> None:
        """`parent`: where its folder goes (default: the temporary directory)."""
        exe = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
        if not os.access(exe, os.X_OK):
            raise BusUnavailable("dbus-daemon is not installed (apt-get install dbus)")
        self.exe = exe
        self._dir = tempfile.mkdtemp(prefix="o2o-dbus-", dir=parent)
        self.socket, self._socket_dir = fitting_socket(Path(self._dir) / "bus.sock", "o2o-dbus-")
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = Path(self._dir) / "bus.conf"
        conf.write_text(_BUS_CONFIG.format(socket=self.socket))
        self.proc = subprocess.Popen(  # noqa: S603 - fixed program, our own config
            [self.exe, "--nofork", "--nopidfile", f"--config-file={conf}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for _ in range(200):
            if self._accepts():
                return
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dbus-daemon exited: {err}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.02)
        raise RuntimeError("dbus-daemon did not create its socket")

    def _accepts(self) -> bool:
        """The daemon listens: its socket file appears when it binds, a moment before it
        accepts, and a client connecting in between is refused."""
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


class _Adapter(ServiceInterface):
    """org.bluez.Adapter1 with the properties bleak reads. dbus-fast's own object manager
    reports every @dbus_property in GetManagedObjects and InterfacesAdded."""

    def __init__(self, owner: "FakeBlueZ", address: str) -> None:
        super().__init__("org.bluez.Adapter1")
        self._owner = owner
        self._address = address
        self.powered = True
        self.discovering = False
        self.filters: dict[str, Any] = {}

    def _ready(self) -> None:
        if not self.powered:
            raise DBusError("org.bluez.Error.NotReady", "Resource Not Ready")

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}") -> None:
        self.filters = {k: v.value for k, v in properties.items()}

    @method()
    def StartDiscovery(self) -> None:
        self._ready()
        self.discovering = True
        self.emit_properties_changed({"Discovering": True})
        self._owner.scans_started += 1

    @method()
    def StopDiscovery(self) -> None:
        self._ready()
        self.discovering = False
        self.emit_properties_changed({"Discovering": False})

    @method()
    def RemoveDevice(self, device: "o") -> None:
        self._owner.remove_device(device)

    @method()
    def GetDiscoveryFilters(self) -> "as":
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable",
                "Pattern"]

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return self._address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return "o2o-fake"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return "o2o-fake"

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> "b":
        return self.powered

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":
        return self.discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":
        return ["central", "peripheral"]

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return []


class _MonitorManager(ServiceInterface):
    """org.bluez.AdvertisementMonitorManager1: what passive scanning registers with."""

    def __init__(self, owner: "FakeBlueZ") -> None:
        super().__init__("org.bluez.AdvertisementMonitorManager1")
        self._owner = owner

    @method()
    def RegisterMonitor(self, application: "o") -> None:
        self._owner.monitor_registered(application)

    @method()
    def UnregisterMonitor(self, application: "o") -> None:
        self._owner.monitor_unregistered(application)

    @dbus_property(access=PropertyAccess.READ)
    def SupportedMonitorTypes(self) -> "as":
        return ["or_patterns"]

    @dbus_property(access=PropertyAccess.READ)
    def SupportedFeatures(self) -> "as":
        return []


def _ad_contents(manufacturer_data: dict[int, bytes], service_data: dict[str, bytes]
                 ) -> list[tuple[int, bytes]]:
    """The AD structures (type, content) an advert with this data would carry on air."""
    out = [(0xFF, cid.to_bytes(2, "little") + data) for cid, data in manufacturer_data.items()]
    for uuid, data in service_data.items():
        if uuid.endswith("-0000-1000-8000-00805f9b34fb") and uuid.startswith("0000"):
            out.append((0x16, int(uuid[4:8], 16).to_bytes(2, "little") + data))
    return out


class _Device(ServiceInterface):
    """org.bluez.Device1 as a scanner sees it: address, RSSI and advertising data."""

    def __init__(self, adapter_path: str, address: str) -> None:
        super().__init__("org.bluez.Device1")
        self.adapter_path = adapter_path
        self.address = address
        self.rssi = -127
        self.manufacturer_data: dict[int, Variant] = {}
        self.service_data: dict[str, Variant] = {}
        self.uuids: list[str] = []

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return self.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "random"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return self.address.replace(":", "-")

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":
        return self.adapter_path

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":
        return self.manufacturer_data

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> "a{sv}":
        return self.service_data

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return self.uuids


def device_path(adapter_path: str, address: str) -> str:
    return f"{adapter_path}/dev_{address.upper().replace(':', '_')}"


class FakeBlueZ:
    """`org.bluez` on the given bus address, with one adapter (`hci0` by default)."""

    def __init__(self, bus_address: str, adapter: str = "hci0",
                 adapter_address: str = "00:1A:7D:DA:71:13", passive: bool = True) -> None:
        """`passive=False` is a BlueZ without the experimental advertisement monitor API."""
        self.bus_address = bus_address
        self.passive_supported = passive
        self.adapter_path = f"/org/bluez/{adapter}"
        self.adapter_address = adapter_address
        self.scans_started = 0
        self.adverts_sent = 0
        self._bus: MessageBus | None = None
        self._adapter: _Adapter | None = None
        self._monitor_manager: _MonitorManager | None = None
        self._devices: dict[str, _Device] = {}
        # passive scanning: monitor path -> (owner's bus name, or-patterns once read)
        self._monitors: dict[str, tuple[str, list[tuple[int, int, bytes]]]] = {}
        self._last_caller = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._bus = await MessageBus(
            bus_address=self.bus_address, bus_type=BusType.SYSTEM
        ).connect()
        await self._bus.request_name("org.bluez")
        self._bus.add_message_handler(self._note_caller)
        self.add_adapter()

    def _note_caller(self, msg: Message) -> None:
        # exported methods do not see who called; RegisterMonitor needs it to read patterns
        if msg.member == "RegisterMonitor" and msg.sender:
            self._last_caller = msg.sender

    async def stop(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            with contextlib.suppress(Exception):
                await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            self._bus = None

    # --- objects ----------------------------------------------------------------------

    def add_adapter(self) -> None:
        """Plug the adapter in (again)."""
        assert self._bus is not None
        if self._adapter is not None:
            return
        self._adapter = _Adapter(self, self.adapter_address)
        self._bus.export(self.adapter_path, self._adapter)  # announces InterfacesAdded
        if self.passive_supported:
            self._monitor_manager = _MonitorManager(self)
            self._bus.export(self.adapter_path, self._monitor_manager)

    def remove_adapter(self) -> None:
        """Unplug the adapter: its devices go with it."""
        assert self._bus is not None
        if self._adapter is None:
            return
        for path in list(self._devices):
            self.remove_device(path)
        self._bus.unexport(self.adapter_path, self._adapter)  # announces InterfacesRemoved
        if self._monitor_manager is not None:
            self._bus.unexport(self.adapter_path, self._monitor_manager)
        self._adapter = None
        self._monitor_manager = None
        self._monitors.clear()

    def set_powered(self, powered: bool) -> None:
        if self._adapter is not None:
            self._adapter.powered = powered
            if not powered:
                self._adapter.discovering = False
            self._adapter.emit_properties_changed(
                {"Powered": powered, "Discovering": self._adapter.discovering})

    def remove_device(self, path: str) -> None:
        dev = self._devices.pop(path, None)
        if dev is not None and self._bus is not None:
            self._bus.unexport(path, dev)

    @property
    def discovering(self) -> bool:
        return self._adapter is not None and self._adapter.discovering

    @property
    def monitoring(self) -> bool:
        """A passive scan is registered and its patterns are known."""
        return any(patterns for _, patterns in self._monitors.values())

    def monitor_registered(self, path: str) -> None:
        self._monitors[path] = (self._last_caller, [])
        task = asyncio.get_running_loop().create_task(self._activate(path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def monitor_unregistered(self, path: str) -> None:
        self._monitors.pop(path, None)

    async def _activate(self, path: str) -> None:
        """Like BlueZ: read the monitor's patterns from its owner, then activate it."""
        assert self._bus is not None
        owner, _ = self._monitors[path]
        for _ in range(100):  # the owner exports the monitor right after registering it
            reply = await self._bus.call(Message(
                destination=owner, path=path, interface="org.freedesktop.DBus.Properties",
                member="Get", signature="ss", body=["org.bluez.AdvertisementMonitor1",
                                                    "Patterns"]))
            if reply.message_type != MessageType.ERROR:
                break
            await asyncio.sleep(0.01)
        else:
            return
        patterns = [(int(a), int(b), bytes(c)) for a, b, c in reply.body[0].value]
        if path in self._monitors:
            self._monitors[path] = (owner, patterns)
        await self._bus.call(Message(destination=owner, path=path,
                                     interface="org.bluez.AdvertisementMonitor1",
                                     member="Activate"))

    def _matches_monitor(self, manufacturer_data: dict[int, bytes],
                         service_data: dict[str, bytes]) -> bool:
        contents = _ad_contents(manufacturer_data, service_data)
        for _, patterns in self._monitors.values():
            for start, ad_type, value in patterns:
                for t, content in contents:
                    if t == ad_type and content[start:start + len(value)] == value:
                        return True
        return False

    # --- advertisements ---------------------------------------------------------------

    def advertise(
        self, address: str, rssi: int, manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
    ) -> bool:
        """One advertisement heard by the adapter. Returns False when nobody would receive it:
        no discovery running and no passive monitor whose patterns match."""
        if self._bus is None or self._adapter is None or not self._adapter.powered:
            return False
        passive_hit = self.monitoring and self._matches_monitor(
            manufacturer_data or {}, service_data or {})
        if not self._adapter.discovering and not passive_hit:
            return False
        path = device_path(self.adapter_path, address)
        dev = self._devices.get(path)
        new = dev is None
        if dev is None:
            dev = _Device(self.adapter_path, address.upper())
            self._devices[path] = dev
        changed: dict[str, Any] = {"RSSI": rssi}
        dev.rssi = rssi
        if manufacturer_data:
            dev.manufacturer_data = {k: Variant("ay", v) for k, v in manufacturer_data.items()}
            changed["ManufacturerData"] = dev.manufacturer_data
        if service_data:
            dev.service_data = {k: Variant("ay", v) for k, v in service_data.items()}
            dev.uuids = sorted(service_data)
            changed["ServiceData"] = dev.service_data
        if new:
            self._bus.export(path, dev)  # announces InterfacesAdded with every property
        else:
            dev.emit_properties_changed(changed)
        self.adverts_sent += 1
        return True


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll a condition on the event loop (for tests and scenario scripts)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)
