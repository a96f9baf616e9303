"""Live state: the newest placed fix of every device, and which devices moved lately."""

from __future__ import annotations

from h3.api import basic_int as h3

from geofence.placed import Placed
from tracker.bounds import evict_least_recent, evict_oldest


def device_view(placed: Placed, battery: float | None = None) -> dict:
    """The JSON shape of a device on the map, the API and the WebSocket stream.

    ``battery`` is the handset's latest status report, shown when the fix carries none."""
    fix = placed.fix
    return {
        "id": fix.device,
        "class": fix.device_class.value,
        "district": fix.district,
        "t": fix.t_ms,
        "lat": round(fix.lat, 7),
        "lon": round(fix.lon, 7),
        "acc": fix.acc,
        "spd": fix.spd,
        "hdg": fix.hdg,
        "bat": fix.bat if fix.bat is not None else battery,
        "cell": h3.int_to_str(placed.cell),
        "grid": placed.grid,
    }


class LiveState:
    def __init__(self) -> None:
        self.devices: dict[str, Placed] = {}
        self.dirty: set[str] = set()
        self.battery: dict[str, float] = {}  # from handset status messages

    def view(self, device: str) -> dict | None:
        placed = self.devices.get(device)
        return None if placed is None else device_view(placed, self.battery.get(device))

    def update_battery(self, device: str, percent: float) -> None:
        self.battery.pop(device, None)  # re-inserted: the table's order is its recency
        self.battery[device] = percent
        if device in self.devices:
            self.dirty.add(device)

    def bound(self, cap: int) -> int:
        """At most ``cap`` devices and ``cap`` batteries: the least recently heard are
        forgotten (the map loses them until they report again); returns how many went."""
        devices = self.devices
        gone = evict_least_recent(devices, cap, lambda d: devices[d].fix.rx_ms)
        for device in gone:
            self.dirty.discard(device)
            self.battery.pop(device, None)
        return len(gone) + len(evict_oldest(self.battery, cap))

    def take_dirty(self) -> list[dict]:
        if not self.dirty:
            return []
        views = [device_view(self.devices[d], self.battery.get(d)) for d in self.dirty]  # only live devices turn dirty
        self.dirty = set()
        return views

    def snapshot(self, district: str | None = None) -> list[dict]:
        """Every device's view, or only those of ``district``."""
        battery = self.battery.get
        if district is None:
            return [device_view(placed, battery(d)) for d, placed in self.devices.items()]
        return [device_view(placed, battery(d)) for d, placed in self.devices.items() if placed.fix.district == district]

    def ids(self, district: str | None = None) -> list[str]:
        """The devices live now, or those of ``district``."""
        if district is None:
            return list(self.devices)
        return [d for d, placed in self.devices.items() if placed.fix.district == district]
