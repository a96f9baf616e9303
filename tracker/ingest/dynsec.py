"""The broker's accounts: Mosquitto's dynamic security plugin, driven over MQTT.

The plugin keeps clients (user name, password hash, enabled or not), roles (lists of
ACLs) and which role each client holds, in a JSON file it rewrites itself, and takes
commands as JSON published on ``$CONTROL/dynamic-security/v1``, answering on
``…/v1/response``. A change applies to the next packet: no broker restart. The roles
themselves: ``tracker.ingest.dynsec_roles``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from protocols.model import DeviceClass
from tracker.config import BrokerParams
from tracker.ingest.broker import BrokerClient, Message, Receipt
from tracker.ingest.dynsec_roles import device_acls, device_role

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"


def new_password() -> str:
    """A device's MQTT password: 144 random bits, URL-safe (typed into a handset's settings)."""
    return secrets.token_urlsafe(18)


# --- commands ----------------------------------------------------------------------------


def create_device(device: str, device_class: DeviceClass, district: str, password: str, text: str = "") -> list[dict]:
    """The commands that provision a device: its role, then its client holding it."""
    role = device_role(device)
    return [
        {"command": "createRole", "rolename": role, "textname": f"{device_class.value} {device} of {district}",
         "acls": device_acls(device, device_class, district)},
        {"command": "createClient", "username": device, "password": password, "textname": text or device,
         "roles": [{"rolename": role}]},
    ]


def delete_device(device: str) -> list[dict]:
    return [{"command": "deleteClient", "username": device}, {"command": "deleteRole", "rolename": device_role(device)}]


def disable_client(username: str) -> list[dict]:
    """The plugin disconnects the client's open connections and refuses new ones."""
    return [{"command": "disableClient", "username": username}]


def enable_client(username: str) -> list[dict]:
    return [{"command": "enableClient", "username": username}]


def set_password(username: str, password: str) -> list[dict]:
    """A new password. The plugin also disconnects the client's open connections (which
    logged in with the old one): a rotated device must log in again, and only the new
    password lets it (tests/tracker/registry check both on the installed broker)."""
    return [{"command": "setClientPassword", "username": username, "password": password}]


class DynsecError(RuntimeError):
    """The plugin refused a command (the message has its answer), or did not answer."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error


@dataclass(frozen=True, slots=True)
class ControlAccount:
    host: str
    port: int
    username: str
    password: str
    timeout_s: float = 10.0


_ids = itertools.count()


class Dynsec:
    """A connection of the control account; ``await execute(commands)`` sends them as one
    batch and returns the plugin's answers, or raises ``DynsecError`` for the first one
    refused. Use as ``async with open_dynsec(account) as dynsec``."""

    def __init__(self, timeout_s: float) -> None:
        self.client: BrokerClient | None = None
        self._timeout_s = timeout_s
        self._waiting: dict[str, tuple[trio.Event, list[dict]]] = {}

    async def _deliver(self, batch: list[Message], receipt: Receipt) -> None:
        for topic, payload, _ in batch:
            if topic != RESPONSE_TOPIC:
                continue
            try:
                responses = json.loads(payload).get("responses", [])
            except (ValueError, AttributeError):
                log.warning("undecodable answer on %s: %r", RESPONSE_TOPIC, payload[:200])
                continue
            for response in responses if isinstance(responses, list) else ():
                if not isinstance(response, dict):
                    continue
                waiting = self._waiting.get(str(response.get("correlationData")))
                if waiting is not None:
                    waiting[1].append(response)
                    waiting[0].set()
        receipt.settle()

    async def execute(self, commands: Sequence[dict], ignore: Sequence[str] = ()) -> list[dict]:
        """Run ``commands`` in order, as one batch; the answers, one per command. A
        command refused raises ``DynsecError`` (those after it in the batch still ran:
        the plugin goes on after a failure), unless its error is one of ``ignore``."""
        tag = f"gw-{os.getpid()}-{next(_ids)}-{secrets.token_hex(4)}"
        keyed = [{**command, "correlationData": f"{tag}-{n}"} for n, command in enumerate(commands)]
        answers: dict[str, dict] = {}
        for command in keyed:
            self._waiting[command["correlationData"]] = (trio.Event(), [])
        if self.client is None:
            raise RuntimeError("not connected: use open_dynsec")
        try:
            self.client.publish(CONTROL_TOPIC, json.dumps({"commands": keyed}).encode(), qos=1)
            with trio.move_on_after(self._timeout_s):
                for command in keyed:
                    event, got = self._waiting[command["correlationData"]]
                    await event.wait()
                    answers[command["correlationData"]] = got[0]
        finally:
            for command in keyed:
                self._waiting.pop(command["correlationData"], None)
        for command in keyed:
            answer = answers.get(command["correlationData"])
            if answer is None:
                raise DynsecError(command["command"], f"no answer from the broker within {self._timeout_s:.0f} s "
                                                      "(is the dynamic security plugin loaded?)")
            if answer.get("error") and answer["error"] not in ignore:
                raise DynsecError(command["command"], str(answer["error"]))
        return [answers[c["correlationData"]] for c in keyed]


@asynccontextmanager
async def open_dynsec(account: ControlAccount) -> AsyncIterator[Dynsec]:
    """The control account connected and subscribed to the plugin's answers.

    The connection runs in a nursery of its own; an error of the caller's (or the
    login's) comes out as itself, not inside the nursery's exception group, so callers
    catch ``DynsecError``, ``BrokerError`` and their own errors plainly.
    """
    params = BrokerParams(account.host, account.port, account.username, account.password,
                          client_id=f"gridwatch-control-{secrets.token_hex(6)}", subscriptions=(RESPONSE_TOPIC,), qos=1,
                          clean_session=True)
    dynsec = Dynsec(account.timeout_s)
    client = dynsec.client = BrokerClient(params, dynsec._deliver)
    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(account.timeout_s):
                    await nursery.start(client.run)
                    while not client.subscribed:  # answers published before the SUBACK would be lost
                        await trio.sleep(0.01)
                yield dynsec
            except Exception as exc:
                failure = exc
            finally:
                with trio.move_on_after(2) as closing:
                    closing.shield = True
                    await client.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaves = group.exceptions
        if len(leaves) == 1 and isinstance(leaves[0], Exception):
            raise leaves[0] from None
        raise
    if failure is not None:
        raise failure
