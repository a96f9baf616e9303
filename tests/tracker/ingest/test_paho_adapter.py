"""paho-mqtt's private members in tracker/ingest/paho_adapter.py: they exist in the pinned
paho, and every branch of the lean PUBLISH path does what paho's own handler would.

Where Mosquitto can produce the case (QoS 0/1 on the lean path, QoS 2, MQTT 5, a client
without an inbox) the client talks to the real broker. Where the broker would refuse to
send it (a topic that is not UTF-8, a truncated PUBLISH) a test socket plays the broker
and feeds the client hand-built packets.
"""

from __future__ import annotations

import importlib.util
import select
import socket
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import trio
from hypothesis import given, settings, strategies as st
from paho.mqtt import __version__ as installed_paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import tracker.ingest.paho_adapter as adapter
from tests.harness import BROKER_USERS
from tests.helpers import wait_for
from tracker.ingest.broker import BrokerClient, BrokerParams
from tracker.ingest.paho_adapter import Inbox, IngestClient

SUCCESS = paho.MQTTErrorCode.MQTT_ERR_SUCCESS
PROTOCOL_ERROR = paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


# --- packets --------------------------------------------------------------------------

def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + remaining_length(len(body)) + body


def publish(topic: bytes, payload: bytes, qos: int = 0, mid: int = 1, dup: bool = False) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"") + payload
    return packet(0x30 | dup << 3 | qos << 1, body)


def ack(kind: int, mid: int) -> bytes:
    """PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70) of a message id."""
    return packet(kind, mid.to_bytes(2, "big"))


CONNACK = packet(0x20, b"\x00\x00")


# --- a test socket playing the broker --------------------------------------------------

def recv_exactly(conn: socket.socket, n: int) -> bytes:
    conn.settimeout(5)
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_packet(conn: socket.socket) -> bytes:
    data = recv_exactly(conn, 2)
    while data[-1] & 0x80:
        data += recv_exactly(conn, 1)
    length, mult = 0, 1
    for b in data[1:]:
        length, mult = length + (b & 0x7F) * mult, mult * 128
    return data + recv_exactly(conn, length)


class FakeBroker:
    """One connection of an IngestClient to a socket the test writes packets into.

    The client reads through the adapter's buffered socket, as in the service; what
    paho's own path delivers (``on_message``) is recorded in ``stock``, a topic that is
    not UTF-8 as None.
    """

    def __init__(self, inbox: Inbox | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.inbox = inbox
        self.client = IngestClient(inbox, client_id="adapter-test")
        self.stock: list[tuple[str | None, bytes, int]] = []
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.listener.getsockname()[1])
        self.conn, _ = self.listener.accept()
        assert read_packet(self.conn)[0] == 0x10  # CONNECT
        self.wrapped = self.client.take_socket()
        assert self.feed(CONNACK) == SUCCESS and self.client.is_connected()

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = None
        self.stock.append((topic, msg.payload, msg.qos))

    def feed(self, data: bytes) -> paho.MQTTErrorCode:
        """Send bytes to the client and let it read them all (as the service's reader does)."""
        self.conn.sendall(data)
        rc = SUCCESS
        if self.client.socket() is None:
            return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
        select.select([self.wrapped.fileno()], [], [], 5)
        self.wrapped.starved = False
        while rc == SUCCESS and self.client.socket() is not None:
            rc = self.client.loop_read()
            if self.wrapped.starved and not self.wrapped.buffered():
                break
        if self.client.socket() is not None:
            self.client.loop_write()
        return rc

    def sent(self, expected: bytes = b"") -> bytes:
        """What the client has written to the broker since the last call: at least as many
        bytes as ``expected`` holds (waited for: small writes may be held back by Nagle's
        algorithm), and whatever else has arrived."""
        out = recv_exactly(self.conn, len(expected))
        self.conn.setblocking(False)
        try:
            while chunk := self.conn.recv(65536):
                out += chunk
        except BlockingIOError:
            pass
        return out

    def client_closed(self) -> bool:
        self.conn.settimeout(5)
        return self.conn.recv(1) == b""

    def close(self) -> None:
        self.client.close_socket()
        self.conn.close()
        self.listener.close()

    def __enter__(self) -> FakeBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the private members ---------------------------------------------------------------

def test_the_pinned_paho_is_the_one_the_adapter_is_written_against():
    pins = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert f"paho-mqtt=={adapter.PAHO_VERSION}" in pins
    assert installed_paho == adapter.PAHO_VERSION


def test_every_private_member_the_adapter_uses_exists_on_a_connected_client():
    for name in adapter.PRIVATE_METHODS:
        assert callable(getattr(paho.Client, name)), name
    with FakeBroker(Inbox()) as fake:
        for name in adapter.PRIVATE_ATTRIBUTES:
            assert hasattr(fake.client, name), name
        assert fake.client._sock is fake.wrapped
        assert fake.client._sockpairR is None and fake.client._sockpairW is None
        assert {"command", "packet"} <= set(fake.client._in_packet)
        assert fake.client._protocol == paho.MQTTv311


def test_importing_the_adapter_fails_loudly_when_a_private_method_is_gone(monkeypatch):
    monkeypatch.delattr(paho.Client, "_send_puback")
    spec = importlib.util.spec_from_file_location("paho_adapter_on_another_paho", adapter.__file__)
    with pytest.raises(ImportError, match="_send_puback"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


# --- the lean path, fed hand-built packets ---------------------------------------------

def test_qos0_and_qos1_publishes_go_straight_to_the_inbox_and_qos1_is_acknowledged():
    inbox = Inbox()
    with FakeBroker(inbox) as fake:
        inbox.rx_ms = 1_700_000_123_456
        assert fake.feed(publish(b"gw/v1/620105/collector/c1/pos", b"\x81\xa1t\x01")
                         + publish("gw/v1/620105/collector/\u00e9/pos".encode(), b"", qos=1, mid=7)
                         + publish(b"gw/v1/620105/sensor/s1/alarm", bytes(range(256)) * 40, qos=1, mid=0xABCD)) == SUCCESS
        assert inbox.messages == [("gw/v1/620105/collector/c1/pos", b"\x81\xa1t\x01", 1_700_000_123_456),
                                  ("gw/v1/620105/collector/\u00e9/pos", b"", 1_700_000_123_456),
                                  ("gw/v1/620105/sensor/s1/alarm", bytes(range(256)) * 40, 1_700_000_123_456)]
        assert all(type(payload) is bytes for _, payload, _ in inbox.messages)
        assert fake.stock == [] and inbox.bad_topics == 0  # paho's own path was not taken
        assert fake.sent(ack(0x40, 7) + ack(0x40, 0xABCD)) == ack(0x40, 7) + ack(0x40, 0xABCD)


@pytest.mark.parametrize("qos", [0, 1])
def test_a_topic_that_is_not_utf8_is_counted_not_delivered_and_still_acknowledged(qos):
    inbox = Inbox()
    with FakeBroker(inbox) as fake:
        assert fake.feed(publish(b"gw/v1/\xff\xfe/pos", b"lost", qos=qos, mid=9)
                         + publish(b"gw/v1/620105/collector/c1/pos", b"kept")) == SUCCESS
        assert [(t, p) for t, p, _ in inbox.messages] == [("gw/v1/620105/collector/c1/pos", b"kept")]
        assert inbox.bad_topics == 1 and fake.stock == []
        expected = ack(0x40, 9) if qos else b""
        assert fake.sent(expected) == expected
        assert fake.client.is_connected()


@pytest.mark.parametrize("qos, body", [
    (0, b""),                             # no room for the topic length
    (0, b"\x00"),
    (1, b"\x00\x01a"),                    # QoS 1: no room for topic length and message id
    (0, b"\x00\x00payload"),              # empty topic: not allowed in MQTT 3.1.1
    (1, b"\x00\x00\x00\x05payload"),
    (0, b"\x00\x09gw/v1"),                # the topic runs past the packet
    (1, b"\x00\x02gw\x00"),               # the message id is cut short
    (1, b"\x00\x02gw"),
], ids=lambda v: v.hex() if isinstance(v, bytes) else str(v))
def test_a_truncated_publish_is_a_protocol_error_that_drops_the_connection(qos, body):
    inbox = Inbox()
    with FakeBroker(inbox) as fake:
        assert fake.feed(packet(0x30 | qos << 1, body) + publish(b"gw/v1/after", b"never read")) == PROTOCOL_ERROR
        assert fake.client.socket() is None
        assert fake.client_closed()  # and nothing (no PUBACK) was sent before closing
        assert inbox.messages == [] and inbox.bad_topics == 0 and fake.stock == []


def publish_bodies() -> st.SearchStrategy[bytes]:
    """PUBLISH bodies from well-formed to garbage: a declared topic length, topic bytes
    that may or may not match it or be UTF-8, and whatever follows."""
    declared = st.builds(lambda n, topic, rest: n.to_bytes(2, "big") + topic + rest,
                         st.integers(0, 24), st.one_of(st.text(max_size=8).map(str.encode), st.binary(max_size=24)),
                         st.binary(max_size=12))
    well_formed = st.builds(lambda topic, rest: len(topic).to_bytes(2, "big") + topic + rest,
                            st.text(min_size=1, max_size=30).map(str.encode), st.binary(max_size=40))
    return st.one_of(well_formed, declared, st.binary(max_size=6))


@settings(max_examples=200, deadline=None)
@given(qos=st.sampled_from([0, 1]), body=publish_bodies())
def test_on_any_publish_body_the_lean_path_does_what_pahos_own_path_does(qos, body):
    data = packet(0x30 | qos << 1, body)
    with FakeBroker(None) as stock:
        stock_rc = stock.feed(data)
        stock_acks = stock.sent(b"...." if qos and stock_rc == SUCCESS else b"")
    inbox = Inbox()
    with FakeBroker(inbox) as lean:
        assert lean.feed(data) == stock_rc
        assert lean.sent(stock_acks) == stock_acks and lean.stock == []
    if stock_rc != SUCCESS:  # paho could not decode it: a protocol error, the connection dropped
        assert stock_rc == PROTOCOL_ERROR and lean.client.socket() is None
        assert stock.stock == inbox.messages == [] and inbox.bad_topics == 0
        return
    [(topic, payload, _)] = stock.stock
    if topic is None:  # not UTF-8: paho hands on a message whose topic cannot be read
        assert inbox.messages == [] and inbox.bad_topics == 1
    else:
        assert [(t, p) for t, p, _ in inbox.messages] == [(topic, payload)] and inbox.bad_topics == 0


# --- the fallbacks to paho's own path ---------------------------------------------------

def test_qos2_takes_pahos_path_and_is_delivered_once_at_pubrel():
    inbox = Inbox()
    with FakeBroker(inbox) as fake:
        assert fake.feed(publish(b"gw/v1/620105/sensor/s1/alarm", b"once", qos=2, mid=5)) == SUCCESS
        assert fake.sent(ack(0x50, 5)) == ack(0x50, 5) and fake.stock == []  # PUBREC; delivered at PUBREL
        assert fake.feed(publish(b"gw/v1/620105/sensor/s1/alarm", b"once", qos=2, mid=5, dup=True)) == SUCCESS
        assert fake.sent(ack(0x50, 5)) == ack(0x50, 5) and fake.stock == []  # the broker's resend
        assert fake.feed(ack(0x62, 5)) == SUCCESS
        assert fake.sent(ack(0x70, 5)) == ack(0x70, 5)  # PUBCOMP
        assert fake.stock == [("gw/v1/620105/sensor/s1/alarm", b"once", 2)]
        assert inbox.messages == []


def test_without_an_inbox_every_publish_takes_pahos_path():
    with FakeBroker(None) as fake:
        assert fake.feed(publish(b"gw/v1/a", b"zero") + publish(b"gw/v1/b", b"one", qos=1, mid=3)) == SUCCESS
        assert fake.stock == [("gw/v1/a", b"zero", 0), ("gw/v1/b", b"one", 1)]
        assert fake.sent(ack(0x40, 3)) == ack(0x40, 3)


# --- on the real broker -------------------------------------------------------------------

def loop_until(client: paho.Client, condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        client.loop(0.05)


def subscriber(broker, inbox: Inbox | None, topic: str, *, protocol=paho.MQTTv311, client_id: str,
               clean_session: bool | None = True) -> tuple[IngestClient, list]:
    client = IngestClient(inbox, client_id=client_id, protocol=protocol,
                          clean_session=None if protocol == paho.MQTTv5 else clean_session)
    client.username_pw_set("gridwatch", BROKER_USERS["gridwatch"])
    stock: list = []
    client.on_message = lambda c, u, msg: stock.append((msg.topic, msg.payload, msg.qos, msg.properties))
    subscribed: list = []
    client.on_subscribe = lambda *args: subscribed.append(args)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic, 2)
    loop_until(client, lambda: subscribed)
    return client, stock


def publish_from_a_device(broker, messages: list[tuple[str, bytes, int]], protocol=paho.MQTTv311,
                          properties: Properties | None = None) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="adapter-test-pub", protocol=protocol)
    client.username_pw_set("simulator", BROKER_USERS["simulator"])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for info in [client.publish(t, p, qos=q, properties=properties) for t, p, q in messages]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_mosquittos_qos0_and_qos1_take_the_lean_path_and_qos1_is_acknowledged(broker):
    topic = "gw/v1/000001/collector/lean/pos"
    inbox = Inbox()
    client, stock = subscriber(broker, inbox, topic, client_id="adapter-lean", clean_session=False)
    sent = [(topic, b"q0", 0), (topic, b"q1-a", 1), (topic, bytes(5000), 1)]
    publish_from_a_device(broker, sent)
    loop_until(client, lambda: len(inbox.messages) == 3)
    assert [(t, p) for t, p, _ in inbox.messages] == [(t, p) for t, p, _ in sent] and stock == []
    client.disconnect()
    client.loop(0.05)
    # the session outlives the connection: a QoS 1 message not acknowledged would come again
    again = IngestClient(inbox, client_id="adapter-lean", clean_session=False)
    again.username_pw_set("gridwatch", BROKER_USERS["gridwatch"])
    connacks: list = []
    again.on_connect = lambda c, u, flags, rc, props: connacks.append(flags.session_present)
    again.connect("127.0.0.1", broker.port)
    loop_until(again, lambda: connacks)
    publish_from_a_device(broker, [(topic, b"after", 1)])
    loop_until(again, lambda: len(inbox.messages) == 4)
    again.disconnect()
    assert connacks == [True]
    assert [p for _, p, _ in inbox.messages] == [b"q0", b"q1-a", bytes(5000), b"after"]


def test_mqtt5_takes_pahos_path_so_properties_are_not_mistaken_for_payload(broker):
    topic = "gw/v1/000002/collector/v5/pos"
    inbox = Inbox()
    client, stock = subscriber(broker, inbox, topic, protocol=paho.MQTTv5, client_id="adapter-v5")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("device", "c9001")
    props.ContentType = "application/msgpack"
    publish_from_a_device(broker, [(topic, b"\x81\xa1t\x01", 0), (topic, b"\x81\xa1t\x02", 1)], paho.MQTTv5, props)
    loop_until(client, lambda: len(stock) == 2)
    client.disconnect()
    assert inbox.messages == []
    assert [(t, p, q) for t, p, q, _ in stock] == [(topic, b"\x81\xa1t\x01", 0), (topic, b"\x81\xa1t\x02", 1)]
    assert all(m[3].ContentType == "application/msgpack" and m[3].UserProperty == [("device", "c9001")] for m in stock)


def test_mosquittos_messages_take_pahos_path_for_a_client_without_an_inbox(broker):
    topic = "gw/v1/000003/collector/none/pos"
    client, stock = subscriber(broker, None, topic, client_id="adapter-none")
    publish_from_a_device(broker, [(topic, b"zero", 0), (topic, b"one", 1), (topic, b"two", 2)])
    loop_until(client, lambda: len(stock) == 3)
    client.disconnect()
    assert [(t, p, q) for t, p, q, _ in stock] == [(topic, b"zero", 0), (topic, b"one", 1), (topic, b"two", 2)]


async def test_the_service_client_gets_mosquittos_qos2_messages_once(broker):
    topic = "gw/v1/000004/sensor/q2/alarm"
    inbox: list = []

    async def deliver(batch, receipt):
        inbox.extend(batch)
        receipt.settle()

    params = BrokerParams("127.0.0.1", broker.port, "gridwatch", BROKER_USERS["gridwatch"], "adapter-q2",
                          subscriptions=(topic,), qos=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(BrokerClient(params, deliver).run)
        sent = [(topic, f"alarm {i}".encode(), 2) for i in range(20)]
        await trio.to_thread.run_sync(publish_from_a_device, broker, sent)
        await wait_for(lambda: len(inbox) >= 20)
        # one more behind them: a second copy of any of the first would have come by now
        await trio.to_thread.run_sync(publish_from_a_device, broker, [(topic, b"end", 2)])
        await wait_for(lambda: any(p == b"end" for _, p, _ in inbox))
        nursery.cancel_scope.cancel()
    assert sorted(p for _, p, _ in inbox) == sorted([p for _, p, _ in sent] + [b"end"])


# --- the service client on hand-built packets ---------------------------------------------

async def test_the_service_client_counts_a_bad_topic_and_reconnects_after_a_truncated_publish():
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    inbox: list = []

    async def deliver(batch, receipt):
        inbox.extend(batch)
        receipt.settle()

    async def read_one(conn) -> bytes:
        head = b""
        while len(head) < 2 or head[-1] & 0x80:  # fixed header byte, remaining length
            head += await conn.recv(1)
        length, mult = 0, 1
        for b in head[1:]:
            length, mult = length + (b & 0x7F) * mult, mult * 128
        body = b""
        while len(body) < length:
            body += await conn.recv(length - len(body))
        return head + body

    params = BrokerParams("127.0.0.1", listener.getsockname()[1], "gridwatch", "x", "adapter-fake",
                          subscriptions=("gw/v1/#",), qos=1, reconnect_min_s=0.01, reconnect_max_s=0.02)
    client = BrokerClient(params, deliver)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            conn, _ = await listener.accept()
            assert (await read_one(conn))[0] == 0x10  # CONNECT
            await conn.send(CONNACK)
            subscribe = await read_one(conn)
            assert subscribe[0] == 0x82
            await conn.send(packet(0x90, subscribe[2:4] + b"\x01"))  # SUBACK, granted QoS 1
            await conn.send(publish(b"gw/v1/\xc3\x28/pos", b"bad", qos=1, mid=11) + publish(b"gw/v1/ok/pos", b"good", qos=1, mid=12))
            assert await read_one(conn) + await read_one(conn) == ack(0x40, 11) + ack(0x40, 12)
            await wait_for(lambda: inbox)
            assert [(t, p) for t, p, _ in inbox] == [("gw/v1/ok/pos", b"good")] and client.bad_topics == 1
            await conn.send(packet(0x32, b"\x00\x02gw\x00"))  # message id cut short
            assert await conn.recv(1) == b""  # the client hangs up
            again, _ = await listener.accept()  # and comes back
            assert (await read_one(again))[0] == 0x10
            nursery.cancel_scope.cancel()
    assert client.connects == 1 and [p for _, p, _ in inbox] == [b"good"]
    for s in (conn, again, listener):
        s.close()
