"""The BlueZ objects a fake BlueZ exports (simulators/fake_bluez.py): the adapter
(`org.bluez.Adapter1`), the advertisement monitor manager passive scanning registers with, and
one `org.bluez.Device1` per advertiser — the properties and methods bleak's BlueZ backend reads.

(No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from the
annotations of the exported methods and properties.)
"""

from typing import Any, Protocol

from dbus_fast import Variant
from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_property, method


class AdapterOwner(Protocol):
    """What the adapter's methods report to (simulators/fake_bluez.py FakeBlueZ)."""

    scans_started: int

    def remove_device(self, path: str) -> None: ...

    def monitor_registered(self, path: str) -> None: ...

    def monitor_unregistered(self, path: str) -> None: ...


class Adapter(ServiceInterface):
    """org.bluez.Adapter1 with the properties bleak reads. dbus-fast's own object manager
    reports every @dbus_property in GetManagedObjects and InterfacesAdded."""

    def __init__(self, owner: AdapterOwner, address: str) -> None:
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


class MonitorManager(ServiceInterface):
    """org.bluez.AdvertisementMonitorManager1: what passive scanning registers with."""

    def __init__(self, owner: AdapterOwner) -> None:
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


def ad_contents(manufacturer_data: dict[int, bytes], service_data: dict[str, bytes]
                 ) -> list[tuple[int, bytes]]:
    """The AD structures (type, content) an advert with this data would carry on air."""
    out = [(0xFF, cid.to_bytes(2, "little") + data) for cid, data in manufacturer_data.items()]
    for uuid, data in service_data.items():
        if uuid.endswith("-0000-1000-8000-00805f9b34fb") and uuid.startswith("0000"):
            out.append((0x16, int(uuid[4:8], 16).to_bytes(2, "little") + data))
    return out


class Device(ServiceInterface):
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
