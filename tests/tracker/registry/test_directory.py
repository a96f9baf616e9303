"""The registry as ingest and the JT/T 808 gateway consult it, and a registration's checks."""

from __future__ import annotations

import pytest

from protocols.jt808.session import KnownTerminal
from protocols.model import DeviceClass
from tracker.registry.directory import Registry
from tracker.registry.model import RegisteredDevice, RegistrationError

COLLECTOR, VEHICLE, SENSOR = DeviceClass.COLLECTOR, DeviceClass.VEHICLE, DeviceClass.SENSOR


def registry(accept: bool = False) -> Registry:
    r = Registry(accept_unregistered=accept, jt808_district="620105")
    r.replace([RegisteredDevice.new("c0001", "collector", "620105"),
               RegisteredDevice.new("v001", "vehicle", "620103", phone="13912345678", terminal_id="T000001", plate="甘A12345"),
               RegisteredDevice("c0002", COLLECTOR, "620105", enabled=False)])
    return r


@pytest.mark.parametrize(("device", "device_class", "district", "accept", "refusal"), [
    ("c0001", COLLECTOR, "620105", False, None),
    ("c0001", VEHICLE, "620105", False, "wrong_class"),
    ("c0001", COLLECTOR, "999999", False, "wrong_district"),
    ("c0002", COLLECTOR, "620105", False, "disabled"),
    ("c0002", COLLECTOR, "620105", True, "disabled"),  # accepting the unknown does not let a disabled one in
    ("c0001", SENSOR, "620105", True, "wrong_class"),
    ("ghost", COLLECTOR, "620105", False, "unregistered"),
    ("ghost", COLLECTOR, "620105", True, None),
])
def test_what_ingest_is_told_about_a_payload(device, device_class, district, accept, refusal):
    assert registry(accept).refusal(device, device_class, district) == refusal


def test_a_terminal_is_found_by_its_phone_as_any_edition_writes_it():
    expected = KnownTerminal("v001", "620103", "T000001", "甘A12345")
    r = registry()
    assert r.terminal("013912345678") == r.terminal("00000000013912345678") == expected
    assert r.terminal("013900000000") is None
    assert registry(accept=True).terminal("013900000000") == KnownTerminal("jt013900000000", "620105")


def test_a_change_made_here_is_in_force_for_the_next_lookup():
    r = registry()
    r.put(RegisteredDevice.new("v001", "vehicle", "620103", phone="13900000001"))
    assert (r.terminal("013912345678"), r.terminal("013900000001").device) == (None, "v001")
    r.put(RegisteredDevice("c0002", COLLECTOR, "620105", enabled=True))
    assert r.refusal("c0002", COLLECTOR, "620105") is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"device": "c/1"}, "device id"),
    ({"device_class": "boat"}, "class"),
    ({"district": "62010"}, "district"),
    ({"phone": "139-1234"}, "phone"),
    ({"component": "6201050101"}, "component"),
    ({"device_class": "vehicle", "component": "6201050101000001"}, "only a sensor"),
    ({"phone": "13912345678"}, "only a vehicle"),
    ({"terminal_id": "T1"}, "give the terminal's phone"),
    ({"name": "x" * 101}, "name"),
])
def test_a_registration_that_cannot_be_made_says_why(fields, message):
    args = {"device": "c1", "device_class": "collector", "district": "620105"} | fields
    with pytest.raises(RegistrationError, match=message):
        RegisteredDevice.new(args.pop("device"), args.pop("device_class"), args.pop("district"), **args)


@pytest.mark.parametrize("fields", [{"device": "c1\n"}, {"district": "620105\n"}, {"phone": "١٣٩١٢٣٤٥٦٧٨"},
                                    {"device_class": "sensor", "component": "6201050101000001\n"},
                                    {"district": "٦٢٠١٠٥"}])
def test_a_trailing_newline_or_other_scripts_digits_are_not_let_through_to_the_database(fields):
    args = {"device": "c1", "device_class": "collector", "district": "620105"} | fields
    if "phone" in fields:
        args["device_class"] = "vehicle"
    with pytest.raises(RegistrationError):
        RegisteredDevice.new(args.pop("device"), args.pop("device_class"), args.pop("district"), **args)
