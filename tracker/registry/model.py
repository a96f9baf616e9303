"""A registered device: who or what it is, and whether the service accepts it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from protocols.jt808.messages import device_id as jt808_device_id
from protocols.model import COMPONENT_CODE, DEVICE_ID, DISTRICT_CODE, DeviceClass

_PHONE = re.compile(r"[0-9]{1,20}")
_TEXT_MAX = 100


class _Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


class RegistrationError(ValueError):
    """A registration that cannot be made as given; the message says which field and why."""


def normal_phone(phone: str) -> str:
    """A terminal's SIM number as its headers carry it: the 12 BCD digits of the
    2011/2013 editions, a shorter number zero-padded in front (an 11-digit mobile number
    is 0 + its digits), and a 2019 terminal's 20 digits cut back to those 12."""
    return jt808_device_id(phone)[2:].zfill(12)


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    id: str
    device_class: DeviceClass
    district: str
    name: str = ""
    person: str = ""  # a collector's name
    plate: str = ""  # a vehicle's plate
    phone: str | None = None  # a JT/T 808 terminal's SIM number
    terminal_id: str = ""  # and its terminal id
    component: str | None = None  # a sensor's 16-digit component code
    enabled: bool = True

    def __post_init__(self) -> None:
        if not DEVICE_ID.fullmatch(self.id):
            raise RegistrationError(f"device id {self.id!r}: 1-64 of A-Z a-z 0-9 _ . : -")
        if not (self.district.isascii() and DISTRICT_CODE.fullmatch(self.district)):
            raise RegistrationError(f"district {self.district!r}: a 6-digit admin code")
        for key in ("name", "person", "plate", "terminal_id"):
            value = getattr(self, key)
            if len(value) > _TEXT_MAX or any(ord(ch) < 32 for ch in value):
                raise RegistrationError(f"{key}: at most {_TEXT_MAX} printable characters")
        if self.phone is not None:
            if not _PHONE.fullmatch(self.phone):
                raise RegistrationError(f"phone {self.phone!r}: the terminal's SIM number, 1-20 digits")
            if self.device_class is not DeviceClass.VEHICLE:
                raise RegistrationError("phone: only a vehicle terminal (JT/T 808) has one")
        if self.terminal_id and self.phone is None:
            raise RegistrationError("terminal_id: give the terminal's phone too")
        if self.component is not None:
            if not (self.component.isascii() and COMPONENT_CODE.fullmatch(self.component)):
                raise RegistrationError(f"component {self.component!r}: a 16-digit component code")
            if self.device_class is not DeviceClass.SENSOR:
                raise RegistrationError("component: only a sensor reports on a component")

    @classmethod
    def new(cls, device: str, device_class: str, district: str, *, name: str = "", person: str = "", plate: str = "",
            phone: str | None = None, terminal_id: str = "", component: str | None = None) -> RegisteredDevice:
        """A registration from what a person typed (the CLI, the admin API)."""
        try:
            klass = DeviceClass(device_class)
        except ValueError:
            raise RegistrationError(f"class {device_class!r}: collector, vehicle or sensor") from None
        phone = phone or None  # an empty field: no phone
        if phone is not None:
            if not _PHONE.fullmatch(phone):
                raise RegistrationError(f"phone {phone!r}: the terminal's SIM number, 1-20 digits")
            phone = normal_phone(phone)
        return cls(device, klass, district, name.strip(), person.strip(), plate.strip(), phone, terminal_id.strip(),
                   component or None)

    @classmethod
    def from_row(cls, row: _Row) -> RegisteredDevice:
        return cls(row["id"], DeviceClass(row["class"]), row["district"], row["name"], row["person"], row["plate"], row["phone"],
                   row["terminal_id"], row["component"], row["enabled"])

    def row(self) -> tuple:
        """The store's REGISTRY_COLUMNS."""
        return (self.id, self.device_class.value, self.district, self.name, self.person, self.plate, self.phone,
                self.terminal_id, self.component, self.enabled)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (API, audit trail, `tracker devices list`)."""
        return {"id": self.id, "class": self.device_class.value, "district": self.district, "name": self.name,
                "person": self.person, "plate": self.plate, "phone": self.phone, "terminal_id": self.terminal_id,
                "component": self.component, "enabled": self.enabled}


def device_names(device: RegisteredDevice) -> dict[str, Any]:
    """What a person reads for a device: its ``label`` (a collector's name, a vehicle's
    plate, a sensor's name or component code, else the device's own name or its id) and
    the registry's fields behind it."""
    by_class = {DeviceClass.COLLECTOR: device.person, DeviceClass.VEHICLE: device.plate,
                DeviceClass.SENSOR: device.name}.get(device.device_class, "")
    label = by_class or device.name or device.person or device.plate or device.component or device.id
    return {"label": label, "name": device.name, "person": device.person, "plate": device.plate,
            "component": device.component}
