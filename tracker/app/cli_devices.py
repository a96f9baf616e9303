"""`tracker devices ...` (the device registry) and `tracker broker-accounts` (the broker's
starting accounts): a module of their own, so the CLI's main module stays readable.

Every change is audited as ``cli:<os user>``. A device's MQTT password is printed once,
when it is added or rotated, and kept nowhere.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

import trio

from tracker import config as config_mod
from tracker.app.cli import CommandError, _store
from tracker.ingest.dynsec import DynsecError
from tracker.registry.model import RegisteredDevice, RegistrationError
from tracker.registry.provisioning import NotRegistered, Provisioning, ProvisioningOff, control_account
from tracker.storage.audit import AuditEntry
from tracker.storage.store import RegistryConflict


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _run(settings: config_mod.Settings, action: str, target: str, work) -> object:
    """``work(provisioning)`` on the configured database and broker; the audit entry of
    ``action`` on ``target`` written with its outcome (refused ones too)."""

    async def main() -> object:
        async with _store(settings) as store:
            provisioning = Provisioning(store, control_account(settings))
            try:
                result, before, after = await work(provisioning)
            except (RegistrationError, RegistryConflict, NotRegistered) as exc:
                if action:
                    await store.append_audit(AuditEntry(actor=_actor(), action=action, target=target, source="cli",
                                                        outcome="refused", detail=str(exc)))
                raise CommandError(str(exc.args[0] if isinstance(exc, NotRegistered) else exc)) from None
            except ProvisioningOff as exc:
                raise config_mod.ConfigError(str(exc)) from None
            except (DynsecError, trio.TooSlowError) as exc:
                raise CommandError(f"the broker did not make the change: {exc or 'no answer'}") from None
            if action:
                await store.append_audit(AuditEntry(actor=_actor(), action=action, target=target, source="cli",
                                                    before=before, after=after,
                                                    detail="MQTT password replaced" if action == "device.rotate" else ""))
            return result

    return trio.run(main)


def cmd_devices_add(args, settings) -> int:
    try:
        device = RegisteredDevice.new(args.id, args.device_class, args.district, name=args.name, person=args.person,
                                      plate=args.plate, phone=args.phone, terminal_id=args.terminal_id,
                                      component=args.component)
    except RegistrationError as exc:
        raise CommandError(str(exc)) from None

    async def work(provisioning: Provisioning):
        return await provisioning.add(device), None, device.as_dict()

    password = _run(settings, "device.add", device.id, work)
    print(f"registered {device.device_class.value} {device.id} in {device.district}")
    print(f"MQTT user name: {device.id}")
    print(f"MQTT password:  {password}")
    print("the password is shown this once: give it to the device now")
    return 0


def _enabled(args, settings, enabled: bool) -> int:
    async def work(provisioning: Provisioning):
        before, after = await provisioning.set_enabled(args.id, enabled)
        return after, before.as_dict(), after.as_dict()

    _run(settings, "device.enable" if enabled else "device.disable", args.id, work)
    print(f"{args.id} {'enabled' if enabled else 'disabled: its connection is closed and it cannot log in'}")
    return 0


def cmd_devices_disable(args, settings) -> int:
    return _enabled(args, settings, False)


def cmd_devices_enable(args, settings) -> int:
    return _enabled(args, settings, True)


def cmd_devices_rotate(args, settings) -> int:
    async def work(provisioning: Provisioning):
        _known, password = await provisioning.rotate(args.id)
        return password, None, None

    password = _run(settings, "device.rotate", args.id, work)
    print(f"new MQTT password of {args.id}: {password}")
    print("the old password no longer works and its connection is closed; this one is shown this once")
    return 0


def cmd_devices_list(args, settings) -> int:
    async def work(provisioning: Provisioning):
        return await provisioning.devices(), None, None

    devices = _run(settings, "", "", work)
    assert isinstance(devices, list)
    if args.json:
        print(json.dumps([d.as_dict() for d in devices], ensure_ascii=False, indent=1))
        return 0
    for d in devices:
        who = d.person or d.plate or (f"component {d.component}" if d.component else "")
        phone = f"phone {d.phone}" + (f" terminal {d.terminal_id}" if d.terminal_id else "") if d.phone else ""
        print(f"{d.id:<20} {d.device_class.value:<9} {d.district} {'enabled ' if d.enabled else 'DISABLED'} "
              f"{d.name:<16} {who:<20} {phone}".rstrip())
    print(f"{len(devices)} device(s)")
    return 0


def cmd_broker_accounts(args, settings) -> int:
    """The dynamic security plugin's file for a production broker: the service's ingest
    account and the control account, with the passwords of config.toml, and their roles;
    accounts already in the file (devices) are kept."""
    from tracker.devcity.dynsec_file import write_dynsec_file
    from tracker.ingest.dynsec_roles import CONTROL_ROLE, SERVICE_ROLE

    mqtt, registry = settings.mqtt, settings.registry
    if not mqtt.password or not registry.control_password:
        raise config_mod.ConfigError("set [mqtt] password and [registry] control_password first: the file gets their hashes")
    path = Path(args.file)
    try:
        write_dynsec_file(path, {mqtt.username: mqtt.password, registry.control_username: registry.control_password},
                          {mqtt.username: SERVICE_ROLE, registry.control_username: CONTROL_ROLE})
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}") from None
    print(f"wrote {path}: accounts {mqtt.username} (ingest) and {registry.control_username} (control); "
          "make it the broker user's and point plugin_opt_config_file at it")
    return 0


def add_device_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="the device registry: register, disable, enable, rotate, list")
    dsub = p.add_subparsers(dest="devices_command", required=True)
    g = dsub.add_parser("add", help="register a device and make its broker account (prints its MQTT password once)")
    g.add_argument("id", help="device id, also its MQTT user name")
    g.add_argument("--class", dest="device_class", required=True, choices=("collector", "vehicle", "sensor"))
    g.add_argument("--district", required=True, help="6-digit admin code")
    g.add_argument("--name", default="", help="display name")
    g.add_argument("--person", default="", help="a collector's name")
    g.add_argument("--plate", default="", help="a vehicle's plate")
    g.add_argument("--phone", help="a JT/T 808 terminal's SIM number")
    g.add_argument("--terminal-id", default="", help="a JT/T 808 terminal's id, checked at its registration")
    g.add_argument("--component", help="a sensor's 16-digit component code")
    g.set_defaults(func=cmd_devices_add)
    for name, func, text in (("disable", cmd_devices_disable, "close its connection and refuse its data and logins"),
                             ("enable", cmd_devices_enable, "let it log in and report again"),
                             ("rotate", cmd_devices_rotate, "a new MQTT password (prints it once); the old one stops working")):
        g = dsub.add_parser(name, help=text)
        g.add_argument("id")
        g.set_defaults(func=func)
    g = dsub.add_parser("list", help="every registered device")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_devices_list)

    p = sub.add_parser("broker-accounts", help="write the broker's dynamic security file with the service's accounts")
    p.add_argument("file", help="the plugin's JSON file (plugin_opt_config_file); kept accounts stay")
    p.set_defaults(func=cmd_broker_accounts)
