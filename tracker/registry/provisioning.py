"""Registering, disabling, enabling and rotating devices: the database's registry and
the broker's accounts changed together, one way for the CLI and the admin API.

The broker is told first when a device loses access (disable: its connection is closed
at once, even should the database write fail after) and last when one gains it (add:
the registration is written, then the account made; should the broker refuse, the
registration is withdrawn). A password is made here, given to the broker, returned to
the caller once and kept nowhere else.

Who acted is the caller's to record (the CLI and the web write different audit entries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from tracker.config import Settings
from tracker.ingest.dynsec import (
    ControlAccount,
    Dynsec,
    DynsecError,
    create_device,
    delete_device,
    disable_client,
    enable_client,
    new_password,
    open_dynsec,
    set_password,
)
from tracker.registry.directory import Registry
from tracker.registry.model import RegisteredDevice
from tracker.storage.store import RegistryConflict, Store

# the plugin's answers to deleting what is not there: a stale account being cleared
_ABSENT = ("Client not found", "Role not found")


def control_account(settings: Settings) -> ControlAccount | None:
    """The broker's control account as configured; None when no password is set."""
    r, m = settings.registry, settings.mqtt
    if not r.control_password:
        return None
    return ControlAccount(m.host, m.port, r.control_username, r.control_password, r.control_timeout_s)


class ProvisioningOff(RuntimeError):
    """No control account is configured ([registry] control_password is empty)."""


class NotRegistered(LookupError):
    def __init__(self, device: str) -> None:
        super().__init__(f"no registered device {device!r}")
        self.device = device


class Provisioning:
    """``account`` None: provisioning is off, every change raises ``ProvisioningOff``.
    ``registry``: this process's in-memory copy, updated at once on each change."""

    def __init__(self, store: Store, account: ControlAccount | None, registry: Registry | None = None) -> None:
        self.store = store
        self.account = account
        self.registry = registry

    @asynccontextmanager
    async def _broker(self) -> AsyncIterator[Dynsec]:
        if self.account is None:
            raise ProvisioningOff("device provisioning is off: set [registry] control_password "
                                  "(the broker's control account) in config.toml")
        async with open_dynsec(self.account) as dynsec:
            yield dynsec

    def _known(self, device: RegisteredDevice) -> RegisteredDevice:
        if self.registry is not None:
            self.registry.put(device)
        return device

    async def devices(self) -> list[RegisteredDevice]:
        return [RegisteredDevice.from_row(row) for row in await self.store.registered_devices()]

    async def add(self, device: RegisteredDevice) -> str:
        """Register ``device`` and make its broker account; its MQTT password.
        Raises ``RegistryConflict`` (id, phone or component taken), ``DynsecError``."""
        (password,) = await self.add_all([device])
        return password

    async def add_all(self, devices: Sequence[RegisteredDevice]) -> list[str]:
        """``add`` for many devices over one broker connection (the demo's fleet)."""
        passwords = []
        async with self._broker() as broker:
            for device in devices:
                await self.store.register_device(device.row())
                password = new_password()
                try:
                    # an account the broker still has under this name (its registration
                    # was removed, or the broker's file outlived the database) is replaced
                    await broker.execute(delete_device(device.id), ignore=_ABSENT)
                    await broker.execute(create_device(device.id, device.device_class, device.district, password,
                                                       device.name or device.person or device.plate))
                    if not device.enabled:
                        await broker.execute(disable_client(device.id))
                except BaseException:
                    # withdrawn even when cancelled: a registration without its account
                    # would only confuse (bounded: the database may be what failed)
                    with trio.move_on_after(10) as cleanup:
                        cleanup.shield = True
                        await self.store.unregister_device(device.id)
                    raise
                self._known(device)
                passwords.append(password)
        return passwords

    async def ensure_all(self, devices: Sequence[RegisteredDevice]) -> dict[str, str]:
        """Every one of ``devices`` registered and given a fresh password, over one broker
        connection: the new ones added, the registered ones rotated (their broker account
        made again should the broker have lost it). The demo's fleet, at each start."""
        known = {d.id for d in await self.devices()}
        passwords = dict(zip([d.id for d in devices if d.id not in known],
                             await self.add_all([d for d in devices if d.id not in known]), strict=True))
        async with self._broker() as broker:
            for device in devices:
                if device.id in passwords:
                    continue
                password = new_password()
                try:
                    await broker.execute(set_password(device.id, password))
                except DynsecError as exc:
                    if exc.error != "Client not found":
                        raise
                    await broker.execute(delete_device(device.id), ignore=_ABSENT)
                    await broker.execute(create_device(device.id, device.device_class, device.district, password))
                await self.store.device_rotated(device.id)
                passwords[device.id] = password
        if self.registry is not None:
            for row in await self.store.registered_devices():
                self.registry.put(RegisteredDevice.from_row(row))
        return passwords

    async def set_enabled(self, device: str, enabled: bool) -> tuple[RegisteredDevice, RegisteredDevice]:
        """(before, after). Disabling closes the device's open connection and refuses the
        next; enabling lets it log in again with the password it had."""
        before = await self._registered(device)
        async with self._broker() as broker:
            await broker.execute(enable_client(device) if enabled else disable_client(device))
        row = await self.store.set_device_enabled(device, enabled)
        if row is None:
            raise NotRegistered(device)
        return before, self._known(RegisteredDevice.from_row(row))

    async def rotate(self, device: str) -> tuple[RegisteredDevice, str]:
        """A new password for ``device``; the old one stops working and the connection
        made with it is closed. Returns the device and its new password."""
        known = await self._registered(device)
        password = new_password()
        async with self._broker() as broker:
            await broker.execute(set_password(device, password))
        if await self.store.device_rotated(device) is None:
            raise NotRegistered(device)
        return known, password

    async def _registered(self, device: str) -> RegisteredDevice:
        row = await self.store.registered_device(device)
        if row is None:
            raise NotRegistered(device)
        return RegisteredDevice.from_row(row)


__all__ = ["DynsecError", "NotRegistered", "Provisioning", "ProvisioningOff", "RegistryConflict"]
