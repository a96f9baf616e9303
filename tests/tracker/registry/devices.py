"""A device on the test broker as a real one connects: its own account, a paho client
that stays connected and notes when the broker hangs up on it."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from tracker.devcity.starters import Mosquitto


class Connected:
    """A connection of ``username``; ``refused`` holds the broker's refusal, if it refused."""

    def __init__(self, broker: Mosquitto, username: str, password: str) -> None:
        self.refused: str | None = None
        self.accepted = threading.Event()
        self.closed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{username}-{time.monotonic_ns()}",
                                  protocol=paho.MQTTv311)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.closed.set()
        self.client.reconnect_delay_set(3600, 3600)  # once closed, stay closed: the test looks at that
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while self.refused is None and not self.accepted.is_set():
            if time.monotonic() > deadline:
                raise AssertionError(f"no CONNACK for {username}")
            time.sleep(0.02)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self.closed.set()
        else:
            self.accepted.set()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def login_refusal(broker: Mosquitto, username: str, password: str) -> str | None:
    """None when the broker takes this login, else its refusal (blocking: a thread from trio)."""
    connected = Connected(broker, username, password)
    connected.close()
    return connected.refused
