"""A fake BlueZ on a private D-Bus: unmodified bleak scans it as if it were a real adapter.

`FakeBlueZ` owns `org.bluez` on a bus (a `PrivateBus`, simulators/private_dbus.py, whose
address DBUS_SYSTEM_BUS_ADDRESS points at) and exports what bleak's BlueZ backend reads
(simulators/bluez_objects.py): an object manager at `/`, an adapter `org.bluez.Adapter1` and one
`org.bluez.Device1` per advertiser, whose properties change with every advertisement while
discovery is on, or while a passive scan's monitor matches it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from simulators.bluez_objects import Adapter, Device, MonitorManager, ad_contents, device_path
from simulators.private_dbus import BusUnavailable, PrivateBus

# PrivateBus and BusUnavailable: imported from here by the tests and the scenario stage
__all__ = ["BusUnavailable", "FakeBlueZ", "PrivateBus", "device_path", "wait_until"]


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
        self._adapter: Adapter | None = None
        self._monitor_manager: MonitorManager | None = None
        self._devices: dict[str, Device] = {}
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
        self._adapter = Adapter(self, self.adapter_address)
        self._bus.export(self.adapter_path, self._adapter)  # announces InterfacesAdded
        if self.passive_supported:
            self._monitor_manager = MonitorManager(self)
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
        contents = ad_contents(manufacturer_data, service_data)
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
            dev = Device(self.adapter_path, address.upper())
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
