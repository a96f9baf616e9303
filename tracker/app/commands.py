"""Commands from the platform to devices: "report your position now", by whatever link
each device has (its JT/T 808 connection, or a command topic on the broker)."""

from __future__ import annotations

import json
from typing import Any

import trio

from geofence.placed import Placed
from protocols.model import DeviceClass
from protocols.owntracks import encode_report_location
from tracker.ingest.jt808_gateway import Jt808Gateway
from tracker.ingest.pipeline import Pipeline
from tracker.storage.retry import DatabaseState


def service_health(database: DatabaseState, pipeline: Pipeline | None, max_persist_lag_s: float) -> tuple[bool, str]:
    """Healthy while the database answers, fixes reach it within ``max_persist_lag_s`` of
    their receipt, and the broker connection is up; otherwise the first reason it is not.
    ``pipeline`` is None while the service is still starting (waiting for the database)."""
    if not database.up:
        return False, database.reason()
    if pipeline is None:
        return False, "starting: reading state from the database"
    lag = pipeline.persist_lag_s()
    if lag > max_persist_lag_s:
        return False, f"persistence lag {lag:.0f} s over the bound {max_persist_lag_s:g} s"
    broker = pipeline.broker
    if broker is None or not broker.connected:
        return False, "not connected to the MQTT broker"
    return True, "ok"


class DeviceCommands:
    def __init__(self, pipeline: Pipeline, gateway: Jt808Gateway | None) -> None:
        self.pipeline = pipeline
        self.gateway = gateway
        # OwnTracks phones by device id: (OwnTracks user, device name), for their command topic
        self.owntracks = {ref.device: (user, phone) for (user, phone), ref in pipeline.router.owntracks_devices.items()}

    async def locate(self, device: str) -> dict[str, Any] | None:
        """Ask a device for its position now; how the request went out, None: unknown device.
        Raises ``trio.BrokenResourceError`` when the device's link is down."""
        placed = self.pipeline.live.devices.get(device)
        if self.gateway is not None and await self.gateway.query_position(device):
            return {"device": device, "via": "jt808", "message": "0x8201"}
        if placed is not None and placed.fix.device_class is DeviceClass.VEHICLE and device.startswith("jt"):
            raise trio.BrokenResourceError(f"terminal {device} is not connected to the JT/T 808 gateway")
        target = self.mqtt_command(device, placed)
        if target is None:
            return None
        self.publish(*target)
        return {"device": device, "via": "mqtt", "topic": target[0]}

    def mqtt_command(self, device: str, placed: Placed | None) -> tuple[str, bytes] | None:
        """The "report location" command for a device on the broker: (topic, payload)."""
        if device in self.owntracks:
            command = encode_report_location(*self.owntracks[device])
            return command.topic, command.payload
        if placed is None:
            return None
        fix = placed.fix
        return f"gw/v1/{fix.district}/{fix.device_class.value}/{device}/cmd", json.dumps({"cmd": "reportLocation"}).encode()

    def publish(self, topic: str, payload: bytes) -> None:
        broker = self.pipeline.broker
        if broker is None:
            raise trio.BrokenResourceError("no broker")
        broker.publish(topic, payload, qos=1)
