"""Small helpers shared by the tests: publishing with paho, waiting on conditions."""

from __future__ import annotations

import json
from collections.abc import Callable

import paho.mqtt.client as paho
import trio

from tracker.devcity.starters import Mosquitto


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]], username: str = "simulator",
            password: str | None = None) -> None:
    """Publish with a plain paho client, as a device would (blocking: run in a thread);
    ``password`` None: the broker's starting account of that name."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{id(messages)}", protocol=paho.MQTTv311)
    client.username_pw_set(username, broker.users[username] if password is None else password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def discard_session(broker: Mosquitto, client_id: str, username: str = "gridwatch") -> None:
    """End the persistent session kept under ``client_id``: connect with a clean session
    and leave. A test's service leaves its session behind, subscribed at QoS 1; the
    shared test broker would otherwise queue every later test's messages for it."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True)
    client.username_pw_set(username, broker.users[username])
    connected: list = []
    client.on_connect = lambda *args: connected.append(True)
    client.connect("127.0.0.1", broker.port)
    for _ in range(100):
        client.loop(0.05)
        if connected:
            break
    client.disconnect()


async def apublish(broker: Mosquitto, messages: list[tuple[str, bytes]], username: str = "simulator",
                   password: str | None = None) -> None:
    await trio.to_thread.run_sync(publish, broker, messages, username, password)


async def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02):
    """Poll a condition on trio's clock; return its first truthy value."""
    with trio.fail_after(timeout):
        while True:
            value = condition()
            if value:
                return value
            await trio.sleep(interval)


async def ws_until(ws, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """Read WebSocket frames until one satisfies the predicate; return it."""
    with trio.fail_after(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if predicate(frame):
                return frame
