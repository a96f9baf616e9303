"""The registry as ingest consults it: in memory, one dict lookup per message.

Loaded from the database at start and reloaded whenever the database's copy changes
(``watch``: a count and the newest change time, read every ``refresh_s``, the whole
table only when they moved), and updated at once by this process's own changes (the
admin API). A change made by another process (the CLI) reaches ingest within
``refresh_s``; the broker, which refuses a disabled device's connection, is told at
once by whoever made the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio

from protocols.jt808.messages import device_id
from protocols.jt808.session import KnownTerminal
from protocols.model import DeviceClass
from tracker.registry.model import RegisteredDevice, device_names, normal_phone
from tracker.storage.retry import retryable
from tracker.storage.store import Store

log = logging.getLogger(__name__)


class Registry:
    """Registered devices by id and by JT/T 808 phone.

    ``accept_unregistered``: payloads of devices it does not know are let through
    (``[registry] unregistered = "accept"``); a known device is still held to its class,
    district and enabled flag.
    """

    def __init__(self, *, accept_unregistered: bool = False, jt808_district: str = "620105") -> None:
        self.accept_unregistered = accept_unregistered
        self.jt808_district = jt808_district  # of terminals let in unregistered
        self.devices: dict[str, RegisteredDevice] = {}
        self._by_phone: dict[str, RegisteredDevice] = {}
        self._version: tuple[int, object] | None = None
        self._names: dict[str, dict[str, Any]] = {}

    def replace(self, devices: Iterable[RegisteredDevice]) -> None:
        self.devices = {d.id: d for d in devices}
        self._by_phone = {d.phone: d for d in self.devices.values() if d.phone is not None}
        self._names = {}

    def names(self, device: str) -> dict[str, Any] | None:
        """What the map calls a registered device (its label and the fields behind it);
        None for one not registered, which the map calls by its id. Built once per
        registration and kept until the registry changes: the live view asks per device
        and per frame."""
        names = self._names.get(device)
        if names is None:
            known = self.devices.get(device)
            if known is None:
                return None
            names = self._names[device] = device_names(known)
        return names

    def put(self, device: RegisteredDevice) -> None:
        """One device added or changed by this process: in effect for the next message."""
        old = self.devices.get(device.id)
        if old is not None and old.phone is not None:
            self._by_phone.pop(old.phone, None)
        self.devices[device.id] = device
        self._names.pop(device.id, None)
        if device.phone is not None:
            self._by_phone[device.phone] = device

    def refusal(self, device: str, device_class: DeviceClass, district: str) -> str | None:
        """Why a payload from ``device``, sent as ``device_class`` of ``district``, is
        refused; None when it is accepted. The ingest hot path: a dict lookup."""
        known = self.devices.get(device)
        if known is None:
            return None if self.accept_unregistered else "unregistered"
        if not known.enabled:
            return "disabled"
        if known.device_class is not device_class:
            return "wrong_class"
        if known.district != district:
            return "wrong_district"
        return None

    def component(self, device: str) -> str | None:
        """The component code a sensor is registered on; None when it has none here."""
        known = self.devices.get(device)
        return known.component if known is not None else None

    def terminal(self, phone: str) -> KnownTerminal | None:
        """The JT/T 808 terminal with this SIM number, registered and enabled; else None
        (or, accepting unregistered devices, a terminal unknown here as ``jt{phone}``)."""
        known = self._by_phone.get(normal_phone(phone))
        if known is None:
            if self.accept_unregistered and device_id(phone) not in self.devices:
                return KnownTerminal(device_id(phone), self.jt808_district)
            return None
        if not known.enabled:
            return None
        return KnownTerminal(known.id, known.district, known.terminal_id, known.plate)

    async def load(self, store: Store) -> None:
        version = await store.registry_version()
        self.replace(RegisteredDevice.from_row(row) for row in await store.registered_devices())
        self._version = version

    async def watch(self, store: Store, every_s: float, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Reload whenever the database's registry changes; runs until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(every_s)
            try:
                version = await store.registry_version()
                if version != self._version:
                    await self.load(store)
                    log.info("device registry reloaded: %d devices", len(self.devices))
            except Exception as exc:
                if not retryable(exc):
                    raise
                log.warning("device registry not reloaded: %s", exc)
