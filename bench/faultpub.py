"""The numbered publisher of the fault lab: a process of its own, raw MQTT 3.1.1 at QoS 0 or 1.

Fix number ``i`` of a run is fix ``seq = i // devices`` of handset ``{prefix}{i % devices:04d}``,
so what PostgreSQL holds can be checked number by number against what was sent and what the
broker acknowledged (PUBACK). Alarm episode ``j`` is a manhole cover ``{prefix}s{j:04d}`` that
reports a tilt alarm and, ``episode_s`` later, its recovery: one raised and one cleared
``tilt`` alarm event each, when nothing is lost or doubled.

At QoS 1 the publisher behaves as a handset should: at most ``window`` messages unacknowledged,
and after a lost connection it reconnects and sends again every message the broker had not
acknowledged, so a message is either acknowledged once or reported as not acknowledged.

It prints ``P sent acknowledged`` every 0.1 s and ``B start``/``B end`` around a burst, and at
the end writes a JSON file: the numbers acknowledged, those of the alarm episodes, reconnects.

    python -m bench.faultpub --port 1883 --password secret --fixes 5000 --rate 500 --out pub.json
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from bench.mqttload import connect_packet, publish_packet

LAT, LON = 36.1050, 103.7200
DISTRICT = "620105"
CONNECT_TIMEOUT_S = 120.0


def handset_id(prefix: str, device: int) -> str:
    return f"{prefix}{device:04d}"


def sensor_id(prefix: str, episode: int) -> str:
    return f"{prefix}s{episode:04d}"


def fix_payload(number: int, devices: int, t_ms: int) -> tuple[str, bytes]:
    """The topic and msgpack payload of fix ``number``: device ``number % devices`` walks
    north-east about 0.1 m a fix from its own start, well inside every position filter."""
    device, step = number % devices, number // devices
    lat = LAT + (device % 50) * 2e-4 + step * 1e-6
    lon = LON + (device // 50 % 50) * 2e-4 + step * 1e-6
    fix = {"t": t_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc": 5.0, "spd": 0.5, "bat": 80.0, "seq": step}
    return device_topic("collector", handset_id(PREFIX[0], device), "pos"), msgpack.packb(fix)


def device_topic(device_class: str, device: str, kind: str) -> str:
    return f"gw/v1/{DISTRICT}/{device_class}/{device}/{kind}"


def episode_payload(prefix: str, episode: int, recovery: bool, t_ms: int) -> tuple[str, bytes]:
    """Alarm episode ``episode``: the cover lifted to 35.5°, or back at 0.5°."""
    dev = sensor_id(prefix, episode)
    record = {"v": 1, "dev": dev, "comp": f"{DISTRICT}0101{episode:06d}", "t": t_ms, "kind": "recovery" if recovery else "alarm",
              "type": "manhole", "alarm": "tilt", "tilt": 0.5 if recovery else 35.5, "bat": 87, "seq": int(recovery)}
    return device_topic("sensor", dev, "alarm"), msgpack.packb(record)


PREFIX = ["f"]  # the run's handset prefix, set once in main (fix_payload is on the hot path)


@dataclass
class _Inflight:
    key: int
    topic: str
    payload: bytes


@dataclass
class Publisher:
    """One connection at a time; ``send`` blocks while the broker is away."""

    port: int
    username: str
    password: str
    client_id: str
    qos: int
    window: int = 2000
    fixes: int = 0  # keys below this are fixes, the others alarm records
    acked: set[int] = field(default_factory=set)
    acked_fixes: int = 0
    reconnects: int = 0
    _inflight: dict[int, _Inflight] = field(default_factory=dict)
    _next_id: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    _broken: bool = True

    def connect(self) -> None:
        """Connect (again), retrying until the broker answers; resend the unacknowledged."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(connect_packet(self.client_id, self.username, self.password))
                connack = _read_exact(sock, 4)
                if connack[0] != 0x20 or connack[3] != 0:
                    raise ConnectionError(f"broker refused the connection: {connack!r}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        sock.settimeout(None)
        if self._sock is not None:
            self.reconnects += 1
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        self._sock, self._broken = sock, False
        threading.Thread(target=self._read, args=(sock,), daemon=True).start()
        with self._lock:
            again, self._inflight = list(self._inflight.values()), {}
        if again:
            self._send_many(again, dup=True)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while len(buffer) >= 2:
                    length, used, shift = 0, 1, 0
                    while True:
                        if used >= len(buffer):
                            break
                        byte = buffer[used]
                        length |= (byte & 0x7F) << shift
                        used += 1
                        shift += 7
                        if not byte & 0x80:
                            break
                    if used + length > len(buffer) or buffer[used - 1] & 0x80:
                        break
                    kind, body = buffer[0] >> 4, buffer[used:used + length]
                    buffer = buffer[used + length:]
                    if kind == 4:  # PUBACK
                        (packet_id,) = struct.unpack("!H", body[:2])
                        with self._lock:
                            if sock is not self._sock:
                                return  # a PUBACK of a connection given up: its messages were sent again
                            done = self._inflight.pop(packet_id, None)
                            if done is not None and done.key not in self.acked:
                                self.acked.add(done.key)
                                self.acked_fixes += done.key < self.fixes
        except OSError:
            pass
        if sock is self._sock:
            self._broken = True

    @property
    def unacknowledged(self) -> int:
        return len(self._inflight)

    def _packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight:
                return self._next_id

    def send(self, messages: list[_Inflight]) -> None:
        if self._broken:
            self.connect()
        if self.qos:
            while len(self._inflight) + len(messages) > self.window:
                if self._broken:
                    self.connect()
                time.sleep(0.001)
        self._send_many(messages, dup=False)

    def _send_many(self, messages: list[_Inflight], dup: bool) -> None:
        chunks = []
        with self._lock:
            for m in messages:
                packet_id = 0
                if self.qos:
                    packet_id = self._packet_id()
                    self._inflight[packet_id] = m
                chunks.append(publish_packet(m.topic, m.payload, self.qos, packet_id, dup))
        try:
            assert self._sock is not None
            self._sock.sendall(b"".join(chunks))
        except OSError:
            self._broken = True
            self.connect()  # at QoS 1 this resends what the broker did not acknowledge

    def drain(self, timeout: float) -> None:
        """Wait until the broker acknowledged everything (QoS 1), reconnecting as needed."""
        deadline = time.monotonic() + timeout
        while self.qos and self._inflight and time.monotonic() < deadline:
            if self._broken:
                self.connect()
            time.sleep(0.01)

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._sock.close()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    fixes: int
    rate: float
    devices: int
    episodes: int = 0
    episode_s: float = 3.0
    burst_at: int = -1  # the fix number at which a burst begins; -1: none
    burst_factor: float = 1.0
    burst_s: float = 0.0


def run(plan: Plan, pub: Publisher, prefix: str, say: Callable[[str], None]) -> dict:
    """Send the plan's fixes and episodes at its rate; the summary for the JSON file."""
    PREFIX[0] = prefix
    pub.fixes = plan.fixes
    episode_at = {int((j + 0.5) * plan.fixes / plan.episodes): j for j in range(plan.episodes)} if plan.episodes else {}
    recoveries: list[tuple[float, int]] = []  # (due, episode), in due order
    pub.connect()
    started = last_tick = last_report = time.perf_counter()
    burst_until = None
    credit = 0.0
    sent = 0
    tick = 0.005
    while sent < plan.fixes or recoveries:
        now = time.perf_counter()
        rate = plan.rate
        if burst_until is None and 0 <= plan.burst_at <= sent:
            burst_until = now + plan.burst_s
            say("B start")
        if burst_until is not None and now < burst_until:
            rate *= plan.burst_factor
        elif burst_until is not None and burst_until > 0:
            burst_until = 0.0
            say("B end")
        # a stall (a broker away) is not made up for in one burst: at most 0.1 s of credit
        credit = min(credit + (now - last_tick) * rate, max(rate * 0.1, 1.0))
        last_tick = now
        due = min(int(credit), plan.fixes - sent)
        batch = []
        t_ms = time.time_ns() // 1_000_000
        for number in range(sent, sent + due):
            topic, payload = fix_payload(number, plan.devices, t_ms)
            batch.append(_Inflight(number, topic, payload))
            if number in episode_at:
                j = episode_at[number]
                topic, payload = episode_payload(prefix, j, False, t_ms)
                batch.append(_Inflight(plan.fixes + 2 * j, topic, payload))
                recoveries.append((now + plan.episode_s, j))
        while recoveries and recoveries[0][0] <= now:
            j = recoveries.pop(0)[1]
            topic, payload = episode_payload(prefix, j, True, t_ms)
            batch.append(_Inflight(plan.fixes + 2 * j + 1, topic, payload))
        if batch:
            pub.send(batch)
        sent += due
        credit -= due
        if now - last_report >= 0.1:
            say(f"P {sent} {pub.acked_fixes if pub.qos else sent}")
            last_report = now
        time.sleep(tick)
    if burst_until:
        say("B end")
    pub.drain(60.0)
    seconds = time.perf_counter() - started
    say(f"P {sent} {pub.acked_fixes if pub.qos else sent}")
    pub.close()
    acked = sorted(pub.acked) if pub.qos else list(range(plan.fixes + 2 * plan.episodes))
    return {"sent": sent, "qos": pub.qos, "seconds": seconds, "reconnects": pub.reconnects,
            "acknowledged": [k for k in acked if k < plan.fixes],
            "alarms_acknowledged": [(k - plan.fixes) // 2 for k in acked if k >= plan.fixes and (k - plan.fixes) % 2 == 0],
            "recoveries_acknowledged": [(k - plan.fixes) // 2 for k in acked if k >= plan.fixes and (k - plan.fixes) % 2 == 1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", default="simulator")
    parser.add_argument("--password", required=True)
    parser.add_argument("--client-id", default=f"faultpub-{time.time_ns()}")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--fixes", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="fixes per second")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--prefix", default="f", help="handset ids are PREFIX0000...; sensors PREFIXs0000...")
    parser.add_argument("--episodes", type=int, default=0, help="manhole tilt alarm episodes spread over the run")
    parser.add_argument("--episode-s", type=float, default=3.0, help="seconds from an alarm to its recovery")
    parser.add_argument("--burst-at", type=int, default=-1, help="fix number at which the burst begins")
    parser.add_argument("--burst-factor", type=float, default=1.0)
    parser.add_argument("--burst-s", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = Plan(args.fixes, args.rate, args.devices, args.episodes, args.episode_s, args.burst_at, args.burst_factor, args.burst_s)
    pub = Publisher(args.port, args.username, args.password, args.client_id, args.qos)

    def say(line: str) -> None:
        print(line, flush=True)

    summary = run(plan, pub, args.prefix, say)
    args.out.write_text(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
