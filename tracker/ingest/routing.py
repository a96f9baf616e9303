"""From an MQTT topic to the decoder that owns it: one dispatch table.

    gw/v1/{district}/{class}/{device}/pos      handset position (any class)
    gw/v1/{district}/{collector|vehicle}/{device}/status   handset status
    gw/v1/{district}/sensor/{device}/status|alarm          component sensor records
    gw/v1/{district}/collector/{device}/report             a collector's problem or verification report
    owntracks/{user}/{device}[/...]            OwnTracks app (mapped to a project device)
    gw/v1/…/{device}/cmd, owntracks/…/cmd      downlinks: the service's own commands

Downlinks go out on topics the uplink subscriptions also match (``gw/v1/+/+/+/+``,
``owntracks/#``), and the broker hands every subscriber what it publishes, so the
service receives its own commands (and those of any other platform instance). They are
ignored, counted by ``gridwatch_ignored_total{type="downlink"}``: not a device's
message, so neither a rejection nor a dead letter.

Pure: decoding results and refusals are collected into a ``Routed`` for the pipeline.
A ``gate`` (the device registry) is asked about every message's device before its
payload is decoded: a device it refuses produces nothing but a ``refused`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from protocols.errors import DecodeError
from protocols.handset import HandsetLimits, HandsetStatus, decode_position, decode_status
from protocols.handset.report import ProblemReport, VerificationReport, decode_report
from protocols.model import DeviceClass, DeviceRef, Fix
from protocols.owntracks import (
    IgnoredMessage,
    OwnTracksLastWill,
    OwnTracksLocation,
    OwnTracksStatus,
    OwnTracksTransition,
    decode_message as decode_owntracks,
)
from protocols.sensor import SensorReading, decode_sensor

_CLASSES = {c.value: c for c in DeviceClass}

# (device, class, district) → why its payloads are refused, None when they are accepted
Gate = Callable[[str, DeviceClass, str], str | None]
_KINDS = ("pos", "alarm", "status", "report")
DOWNLINK = "cmd"  # the last topic level of a command to a device


def is_downlink(topic: str) -> bool:
    """A command to a device (``gw/v1/{district}/{class}/{device}/cmd`` or OwnTracks'
    ``owntracks/{user}/{device}/cmd``), as the platform publishes it."""
    root, _, rest = topic.partition("/")
    if not topic.endswith("/" + DOWNLINK):
        return False
    levels = rest.count("/") + 2
    return (root == "gw" and levels == 6 and topic.startswith("gw/v1/")) or (root == "owntracks" and levels == 4)


@dataclass(slots=True)
class Routed:
    fixes: list[Fix] = field(default_factory=list)
    readings: list[SensorReading] = field(default_factory=list)
    statuses: list[HandsetStatus] = field(default_factory=list)
    reports: list[ProblemReport | VerificationReport] = field(default_factory=list)  # collectors' handset reports
    events: list[dict] = field(default_factory=list)  # for the live stream, each naming its device's district
    rejected: list[tuple[str, DecodeError, str, str | None, bytes, int]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (protocol, what)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (reason, topic, device): the gate's
    # device → receipt time of its newest message that decoded (of any kind): it is online
    heard: dict[str, int] = field(default_factory=dict)


def parse_topic(topic: str) -> tuple[str, DeviceRef]:
    """``gw/v1/{district}/{class}/{device}/{kind}`` → (kind, device)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "gw" or parts[1] != "v1":
        raise DecodeError("bad_topic", f"topic {topic!r} is not gw/v1/{{district}}/{{class}}/{{device}}/{{kind}}")
    _, _, district, cls, device, kind = parts
    if kind not in _KINDS:
        raise DecodeError("bad_topic", f"unknown message kind {kind!r} in {topic!r}")
    device_class = _CLASSES.get(cls)
    if device_class is None:
        raise DecodeError("bad_topic", f"unknown device class {cls!r} in {topic!r}")
    try:
        return kind, DeviceRef(device, device_class, district)
    except ValueError as exc:
        raise DecodeError("bad_topic", f"{exc} in {topic!r}") from None


def parse_owntracks_map(entries: tuple[str, ...], district: str) -> dict[tuple[str, str], DeviceRef]:
    """``["alice/phone=c0042", ...]`` → {("alice", "phone"): collector c0042}."""
    mapping = {}
    for entry in entries:
        source, sep, device = entry.partition("=")
        user, slash, phone = source.partition("/")
        if not sep or not slash or not user or not phone:
            raise ValueError(f"OwnTracks mapping {entry!r} is not user/device=device_id")
        mapping[(user.strip(), phone.strip())] = DeviceRef(device.strip(), DeviceClass.COLLECTOR, district)
    return mapping


class Router:
    def __init__(self, handset: HandsetLimits, owntracks_devices: Mapping[tuple[str, str], DeviceRef],
                 max_routes: int = 500_000, gate: Gate | None = None) -> None:
        self.handset = handset
        self.gate = gate
        self.max_routes = max_routes  # parsed topics remembered; a cache: emptied when full
        self.routes_dropped = 0
        self.owntracks_devices = owntracks_devices
        self._routes: dict[str, tuple[str, DeviceRef]] = {}
        # (kind, device class) → handler; a pair missing here is refused as unsupported
        self._table: dict[tuple[str, DeviceClass], Callable] = {
            ("pos", DeviceClass.COLLECTOR): self._position,
            ("pos", DeviceClass.VEHICLE): self._position,
            ("pos", DeviceClass.SENSOR): self._position,
            ("status", DeviceClass.COLLECTOR): self._status,
            ("status", DeviceClass.VEHICLE): self._status,
            ("status", DeviceClass.SENSOR): self._sensor,
            ("alarm", DeviceClass.SENSOR): self._sensor,
            ("report", DeviceClass.COLLECTOR): self._report,
        }

    def route(self, topic: str, payload: bytes, rx_ms: int, out: Routed) -> None:
        if is_downlink(topic):
            out.ignored.append(("owntracks" if topic.startswith("owntracks/") else "handset", "downlink"))
            return
        if topic.startswith("owntracks/"):
            self._owntracks(topic, payload, rx_ms, out)
            return
        route = self._routes.get(topic)
        try:
            if route is None:
                route = parse_topic(topic)
                if len(self._routes) >= self.max_routes:
                    self.routes_dropped += len(self._routes)
                    self._routes.clear()
                self._routes[topic] = route
            kind, ref = route
            gate = self.gate
            if gate is not None:
                refusal = gate(ref.device, ref.device_class, ref.district)
                if refusal is not None:
                    out.refused.append((refusal, topic, ref.device))
                    return
            handler = self._table.get((kind, ref.device_class))
            if handler is None:
                raise DecodeError("unsupported", f"no decoder for {kind!r} messages of {ref.device_class.value}s")
            handler(payload, ref, rx_ms, out, topic)
            out.heard[ref.device] = rx_ms
        except DecodeError as error:
            protocol = "sensor" if route is not None and route[1].device_class is DeviceClass.SENSOR and route[0] != "pos" else "handset"
            out.rejected.append((protocol, error, topic, route[1].device if route else None, payload, rx_ms))

    def _position(self, payload: bytes, ref: DeviceRef, rx_ms: int, out: Routed, topic: str) -> None:
        decoded = decode_position(payload, ref, rx_ms, self.handset)
        out.fixes.extend(decoded.fixes)
        for error in decoded.rejected:
            out.rejected.append(("handset", error, topic, ref.device, payload, rx_ms))

    def _status(self, payload: bytes, ref: DeviceRef, rx_ms: int, out: Routed, topic: str) -> None:
        out.statuses.append(decode_status(payload, ref, rx_ms, self.handset))

    def _report(self, payload: bytes, ref: DeviceRef, rx_ms: int, out: Routed, topic: str) -> None:
        out.reports.append(decode_report(payload, ref, rx_ms))

    def _sensor(self, payload: bytes, ref: DeviceRef, rx_ms: int, out: Routed, topic: str) -> None:
        decoded = decode_sensor(payload, ref, rx_ms)
        out.readings.extend(decoded.readings)
        for error in decoded.rejected:
            out.rejected.append(("sensor", error, topic, ref.device, payload, rx_ms))

    def _owntracks(self, topic: str, payload: bytes, rx_ms: int, out: Routed) -> None:
        try:
            message = decode_owntracks(topic, payload, self.owntracks_devices, rx_ms)
        except DecodeError as error:
            parts = topic.split("/")
            device = None
            if len(parts) >= 3 and (parts[1], parts[2]) in self.owntracks_devices:
                device = self.owntracks_devices[(parts[1], parts[2])].device
            out.rejected.append(("owntracks", error, topic, device, payload, rx_ms))
            return
        ref = message.fix if isinstance(message, OwnTracksLocation) else getattr(message, "ref", None)
        if ref is not None and self.gate is not None:
            refusal = self.gate(ref.device, ref.device_class, ref.district)
            if refusal is not None:
                out.refused.append((refusal, topic, ref.device))
                return
        if ref is not None:
            out.heard[ref.device] = rx_ms
        if isinstance(message, OwnTracksLocation):
            out.fixes.append(message.fix)
        elif isinstance(message, OwnTracksTransition):
            out.events.append({"type": "transition", "device": message.ref.device, "district": message.ref.district,
                               "t": message.t_ms, "event": message.event.value, "region": message.region})
        elif isinstance(message, OwnTracksLastWill):
            out.events.append({"type": "device_offline", "device": message.ref.device, "district": message.ref.district,
                               "t": message.rx_ms, "reason": "lwt"})
        elif isinstance(message, OwnTracksStatus):
            out.ignored.append(("owntracks", "status"))
        elif isinstance(message, IgnoredMessage):
            out.ignored.append(("owntracks", message.type if message.known else "unknown"))
