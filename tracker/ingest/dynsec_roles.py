"""Who may do what on the broker: the roles of the dynamic security plugin's accounts.

Every account is pinned by its role to what it may do:

- a device (user name: its id) holds a role of its own, ``device:{id}``, which names
  its district, class and id in every topic: it may publish only
  ``gw/v1/{district}/{class}/{id}/{kind}`` for the kinds its class sends (``alarm`` is a
  sensor's alone, ``report`` a collector's) and subscribe only to its ``…/cmd``; a collector may also publish as
  the OwnTracks user ``{id}``. A role per device (not one shared role with ``%u``) is
  what pins the district and class: a shared pattern could only pin the id.
- the service's ingest account reads every uplink, writes downlinks, reads ``$SYS``;
- the control account (a separate one: the ingest account never changes accounts)
  reads and writes ``$CONTROL/dynamic-security/#`` and nothing else;
- an account publishing for every device (the demo's simulator, the benchmark's load)
  exists only where the demo or the tests start the broker.

Everything else is refused by the default ACL access (publish and subscribe denied).
Standard library only: the broker's starter imports it, run by whatever Python the
broker's user has.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from protocols.model import DeviceClass

SERVICE_ROLE = "gridwatch-service"
CONTROL_ROLE = "gridwatch-control"
ALL_DEVICES_ROLE = "gridwatch-all-devices"  # demo and tests only: never in production

# What a device of each class publishes (the routing table's pairs, tracker.ingest.routing).
UPLINK_KINDS = {
    DeviceClass.COLLECTOR: ("pos", "status", "report"),
    DeviceClass.VEHICLE: ("pos", "status"),
    DeviceClass.SENSOR: ("pos", "status", "alarm"),
}

Acl = dict[str, Any]


def _acl(acltype: str, topic: str) -> Acl:
    return {"acltype": acltype, "topic": topic, "allow": True}


def _reads(topic: str) -> list[Acl]:
    return [_acl("subscribePattern", topic), _acl("publishClientReceive", topic)]


ROLE_ACLS: dict[str, list[Acl]] = {
    SERVICE_ROLE: [
        *_reads("gw/v1/#"), _acl("publishClientSend", "gw/v1/+/+/+/cmd"),
        *_reads("owntracks/#"), _acl("publishClientSend", "owntracks/+/+/cmd"),
        *_reads("$SYS/#"),
    ],
    CONTROL_ROLE: [*_reads("$CONTROL/dynamic-security/#"), _acl("publishClientSend", "$CONTROL/dynamic-security/#")],
    ALL_DEVICES_ROLE: [
        *_reads("gw/v1/#"), _acl("publishClientSend", "gw/v1/#"),
        *_reads("owntracks/#"), _acl("publishClientSend", "owntracks/#"),
    ],
}

# Whatever no role allows is refused; receiving what one may subscribe to is allowed.
DEFAULT_ACL_ACCESS = [
    {"acltype": "publishClientSend", "allow": False},
    {"acltype": "publishClientReceive", "allow": True},
    {"acltype": "subscribe", "allow": False},
    {"acltype": "unsubscribe", "allow": True},
]


def device_role(device: str) -> str:
    return f"device:{device}"


def device_acls(device: str, device_class: DeviceClass, district: str) -> list[Acl]:
    """The ACLs of one device's own role: its topics, under its district and class only."""
    base = f"gw/v1/{district}/{device_class.value}/{device}"
    acls = [_acl("publishClientSend", f"{base}/{kind}") for kind in UPLINK_KINDS[device_class]]
    acls += [_acl("subscribeLiteral", f"{base}/cmd"), _acl("publishClientReceive", f"{base}/cmd")]
    if device_class is DeviceClass.COLLECTOR:  # the OwnTracks app logs in as its user: the device id
        acls += [_acl("publishClientSend", f"owntracks/{device}/#"), *_reads(f"owntracks/{device}/#")]
    return acls


def hashed_password(password: str, iterations: int = 101) -> dict[str, Any]:
    """The plugin's stored form of a password (its file's ``password``, ``salt``,
    ``iterations``): PBKDF2-HMAC-SHA512, 64 bytes, over a 12-byte salt, base64, as
    `mosquitto_ctrl dynsec init` writes it."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(), "iterations": iterations}
