"""Live state: the newest placed fix of every device, and which devices moved lately.

Beside the position, what a person watching the map needs to read a device: who or what
it is (the registry's names, through ``names``), when it was last heard from by any
message (a sensor that sits still keeps its fix's time while its status reports keep
coming: "online" is judged by ``heard``, not by the fix), and a sensor's latest readings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from h3.api import basic_int as h3

from geofence.placed import Placed
from tracker.bounds import evict_least_recent, evict_oldest

# device id → the registry's names of it ({"label", "name", "person", "plate", "component"}), None: unregistered
Names = Callable[[str], Mapping[str, Any] | None]
# the sensor fields a reading may carry, as the map shows them
READING_FIELDS = ("tilt", "water", "gas", "smoke", "fill", "level", "bat")


def device_view(placed: Placed, battery: float | None = None, heard: int | None = None,
                readings: Mapping[str, Any] | None = None, names: Mapping[str, Any] | None = None) -> dict:
    """The JSON shape of a device on the map, the API and the WebSocket stream.

    ``battery`` is the handset's latest status report, shown when the fix carries none;
    ``heard`` when any message of the device last arrived (receipt time, ms); ``readings``
    a sensor's latest values with their time; ``names`` the registry's."""
    fix = placed.fix
    view = {
        "id": fix.device,
        "class": fix.device_class.value,
        "district": fix.district,
        "t": fix.t_ms,
        "heard": max(fix.rx_ms, heard) if heard is not None else fix.rx_ms,
        "lat": round(fix.lat, 7),
        "lon": round(fix.lon, 7),
        "acc": fix.acc,
        "spd": fix.spd,
        "hdg": fix.hdg,
        "bat": fix.bat if fix.bat is not None else battery,
        "cell": h3.int_to_str(placed.cell),
        "grid": placed.grid,
        "label": fix.device,
    }
    if names is not None:
        view.update(names)
    if readings is not None:
        view["readings"] = dict(readings)
        if view["bat"] is None and readings.get("bat") is not None:
            view["bat"] = readings["bat"]
    return view


class LiveState:
    def __init__(self, names: Names | None = None) -> None:
        self.devices: dict[str, Placed] = {}
        self.dirty: set[str] = set()
        self.battery: dict[str, float] = {}  # from handset status messages
        self.heard: dict[str, int] = {}  # device → receipt time of its latest message of any kind
        self.readings: dict[str, dict[str, Any]] = {}  # sensor → its latest value of each field, and "t"
        self.names = names  # the registry, looked up per view: a rename shows at the next view

    def _view(self, device: str, placed: Placed) -> dict:
        names = self.names
        return device_view(placed, self.battery.get(device), self.heard.get(device), self.readings.get(device),
                           names(device) if names is not None else None)

    def view(self, device: str) -> dict | None:
        placed = self.devices.get(device)
        return None if placed is None else self._view(device, placed)

    def update_battery(self, device: str, percent: float) -> None:
        self.battery.pop(device, None)  # re-inserted: the table's order is its recency
        self.battery[device] = percent
        if device in self.devices:
            self.dirty.add(device)

    def update_heard(self, device: str, rx_ms: int) -> None:
        """A message of any kind arrived from ``device``: it is online, whether or not it moved.
        Marks the device for the next tick only when its view's time moves by a second or
        more (a chatty sensor does not cost a delta per message)."""
        before = self.heard.pop(device, None)  # re-inserted: the table's order is its recency
        self.heard[device] = rx_ms if before is None else max(before, rx_ms)
        if device in self.devices and (before is None or rx_ms - before >= 1000):
            self.dirty.add(device)

    def update_readings(self, device: str, t_ms: int, values: Mapping[str, Any]) -> None:
        """A sensor's record: its values replace the older ones field by field (a status
        report may carry the fill level and not the battery), newest event time wins."""
        current = self.readings.pop(device, None) or {}
        if current.get("t", -1) <= t_ms:
            current.update({k: v for k, v in values.items() if v is not None})
            current["t"] = t_ms
        self.readings[device] = current
        if device in self.devices:
            self.dirty.add(device)

    def bound(self, cap: int) -> int:
        """At most ``cap`` devices and ``cap`` entries in each side table: the least
        recently heard are forgotten (the map loses them until they report again);
        returns how many went."""
        devices = self.devices
        gone = evict_least_recent(devices, cap, lambda d: devices[d].fix.rx_ms)
        for device in gone:
            self.dirty.discard(device)
            self.battery.pop(device, None)
            self.heard.pop(device, None)
            self.readings.pop(device, None)
        return (len(gone) + len(evict_oldest(self.battery, cap)) + len(evict_oldest(self.heard, cap))
                + len(evict_oldest(self.readings, cap)))

    def take_dirty(self) -> list[dict]:
        if not self.dirty:
            return []
        devices = self.devices
        views = [self._view(d, devices[d]) for d in self.dirty]  # only live devices turn dirty
        self.dirty = set()
        return views

    def snapshot(self, district: str | None = None) -> list[dict]:
        """Every device's view, or only those of ``district``."""
        view = self._view
        if district is None:
            return [view(d, placed) for d, placed in self.devices.items()]
        return [view(d, placed) for d, placed in self.devices.items() if placed.fix.district == district]

    def ids(self, district: str | None = None) -> list[str]:
        """The devices live now, or those of ``district``."""
        if district is None:
            return list(self.devices)
        return [d for d, placed in self.devices.items() if placed.fix.district == district]
