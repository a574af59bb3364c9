"""What bleak does not say while a scan runs: is bluetoothd still the same process, is the
adapter still there, powered and (for an active scan) discovering. Asked of BlueZ directly,
over a D-Bus connection of our own, every few seconds: a few small calls, no device lists.

Without this a scanner would notice an adapter switched off or a restarted bluetoothd only
by hearing nothing, which in a quiet shop may be normal for hours.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

CALL_TIMEOUT_S = 5.0
_NODE = re.compile(r'<node name="(hci\d+)"')


class BluezProbe:
    def __init__(self, adapter: str | None = None) -> None:
        self.adapter = adapter
        self._bus: Any = None

    async def _call(self, destination: str, path: str, interface: str, member: str,
                    signature: str = "", body: list[Any] | None = None) -> Any:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        if self._bus is None or not self._bus.connected:
            self._bus = await asyncio.wait_for(
                MessageBus(bus_type=BusType.SYSTEM).connect(), CALL_TIMEOUT_S)
        reply = await asyncio.wait_for(self._bus.call(Message(
            destination=destination, path=path, interface=interface, member=member,
            signature=signature, body=body or [])), CALL_TIMEOUT_S)
        if reply.message_type == MessageType.ERROR:
            return None
        return reply.body

    async def owner(self) -> str:
        """The unique bus name of bluetoothd now ("" when it is not running or the bus
        cannot be asked)."""
        try:
            body = await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "GetNameOwner", "s", ["org.bluez"])
        except Exception:  # reported by problem() on the next look
            self.close()
            return ""
        return str(body[0]) if body else ""

    async def problem(self, owner: str, active: bool) -> str:
        """Why the scan that started under `owner` cannot be working any more ("" if none)."""
        try:
            now = await self.owner()
            if not now or not owner:
                return "bluetoothd is not running"
            if now != owner:
                return "bluetoothd was restarted"
            adapter = self.adapter
            if not adapter:
                body = await self._call("org.bluez", "/org/bluez",
                                        "org.freedesktop.DBus.Introspectable", "Introspect")
                nodes = sorted(_NODE.findall(body[0])) if body else []
                if not nodes:
                    return "no Bluetooth adapter"
                adapter = nodes[0]
            body = await self._call("org.bluez", f"/org/bluez/{adapter}",
                                    "org.freedesktop.DBus.Properties", "GetAll", "s",
                                    ["org.bluez.Adapter1"])
            if not body:
                return f"adapter {adapter} is gone"
            props = {k: v.value for k, v in body[0].items()}
            if not props.get("Powered"):
                return f"adapter {adapter} is powered off"
            if active and not props.get("Discovering"):
                return f"adapter {adapter} stopped discovering"
            return ""
        except Exception as exc:  # whatever the bus does, it is reported, never raised
            self.close()
            return f"cannot ask BlueZ: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
