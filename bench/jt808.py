"""JT/T 808 throughput and capacity.

1. Decoded 0x0200 fixes per second on one core: decode only (header, body, Fix), then
   framing + decode from a wire byte stream, then the whole session path (framing, decode,
   Fix, alarm edges, 0x8001 answer).
2. Terminals held at once over loopback: a gateway in its own process, N terminals that
   register, authenticate and report once per interval each; acknowledged reports, answer
   latency and the gateway's CPU.

    python -m bench.jt808 [--terminals 500] [--duration 20] [--interval 10]

Prints a table and writes bench/results/jt808.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import trio

from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import decode_location, encode_message, split_message
from protocols.jt808.session import Jt808Session, SessionPolicy
from protocols.model import Datum, DeviceClass, Fix

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "jt808.json"
SECRET = b"bench-secret-jt808"
DISTRICT = "620105"
GMT8_S = 8 * 3600


def phone_of(i: int) -> str:
    return f"0139{i:08d}"


def bcd_time(epoch_s: float) -> bytes:
    return bytes.fromhex(time.strftime("%y%m%d%H%M%S", time.gmtime(epoch_s + GMT8_S)))


def location_frame(phone: str, serial: int, epoch_s: float, rng: random.Random) -> bytes:
    """A realistic 0x0200: moving vehicle around Lanzhou, mileage, signal, satellites."""
    lat = int((36.06 + rng.uniform(-0.05, 0.05)) * 1e6)
    lon = int((103.83 + rng.uniform(-0.05, 0.05)) * 1e6)
    body = struct.pack(">IIIIhHH", 0, 3, lat, lon, 1520, rng.randrange(0, 900), rng.randrange(0, 360))
    body += bcd_time(epoch_s)
    body += b"\x01\x04" + struct.pack(">I", rng.randrange(0, 10**6)) + b"\x30\x01\x1c\x31\x01\x0c"
    return encode_message(0x0200, body, phone, serial)


def register_frame(phone: str) -> bytes:
    body = struct.pack(">HH", 62, 105) + b"GW001" + b"GW-T8".ljust(20, b"\0") + b"T000001" + b"\x02" + "甘A12345".encode("gbk")
    return encode_message(0x0100, body, phone, 0)


def auth_frame(phone: str) -> bytes:
    code = SessionPolicy(DISTRICT, SECRET).auth_code(phone)
    return encode_message(0x0102, code, phone, 1)


def rate(fn, count: int, seconds: float = 2.0) -> float:
    """Best of three runs of fn() (which handles `count` reports), in reports per second."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        while True:
            fn()
            done += count
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = max(best, done / elapsed)
    return best


def bench_decode(n: int = 5000) -> dict[str, float]:
    rng = random.Random(808)
    now = time.time()
    wires = [location_frame(phone_of(i % 200), i, now - rng.randrange(0, 600), rng) for i in range(n)]
    contents = FrameReader().feed(b"".join(wires))
    assert len(contents) == n
    stream = b"".join(wires)
    rx_ms = int(now * 1000)
    vehicle, wgs84 = DeviceClass.VEHICLE, Datum.WGS84

    def decode_only() -> None:
        for content in contents:
            header, body = split_message(content)
            loc = decode_location(body)
            Fix("jt" + header.phone, vehicle, DISTRICT, loc.t_ms, loc.lat, loc.lon, rx_ms,
                None, loc.speed_kmh / 3.6, float(loc.direction), float(loc.alt), None, wgs84, header.serial)

    def framing_and_decode() -> None:
        reader = FrameReader()
        for start in range(0, len(stream), 16384):
            for content in reader.feed(stream[start:start + 16384]):
                header, body = split_message(content)
                loc = decode_location(body)
                Fix("jt" + header.phone, vehicle, DISTRICT, loc.t_ms, loc.lat, loc.lon, rx_ms,
                    None, loc.speed_kmh / 3.6, float(loc.direction), float(loc.alt), None, wgs84, header.serial)

    policy = SessionPolicy(DISTRICT, SECRET, require_auth=False)
    per_terminal = {}
    for wire in wires:
        per_terminal.setdefault(wire[5:11], []).append(wire)
    terminal_streams = [b"".join(frames) for frames in per_terminal.values()]

    def session_path() -> None:
        fixes = 0
        for data in terminal_streams:
            reader = FrameReader()
            session = Jt808Session(policy)
            fixes += len(session.receive(reader.feed(data), rx_ms).fixes)
        assert fixes == n

    return {
        "decode_only": rate(decode_only, n),
        "framing_and_decode": rate(framing_and_decode, n),
        "session_path": rate(session_path, n),
    }


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class CountingSink:
    def __init__(self) -> None:
        self.fixes_in = 0
        self.rejects: dict[str, int] = {}

    async def fixes(self, fixes) -> None:
        self.fixes_in += len(fixes)

    async def alarms(self, alarms) -> None:
        pass

    def rejected(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def tolerated(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        pass


async def gateway_process_main() -> None:
    """The gateway side: serve, answer "cpu" with CPU seconds, "stop" with the totals."""
    from tracker.ingest.jt808_gateway import Jt808Settings, serve_jt808

    sink = CountingSink()
    settings = Jt808Settings(auth_secret=SECRET, max_connections=100_000, max_connections_per_address=100_000)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_jt808, settings, sink)
        print(json.dumps({"port": port}), flush=True)
        while True:
            line = (await trio.to_thread.run_sync(sys.stdin.readline)).strip()
            if line == "cpu":
                print(json.dumps({"cpu_s": cpu_seconds()}), flush=True)
            else:
                print(json.dumps({"cpu_s": cpu_seconds(), "fixes": sink.fixes_in, "rejects": sink.rejects}), flush=True)
                nursery.cancel_scope.cancel()
                return


class GatewayProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.jt808", "--serve"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.port = self._read()["port"]

    def _read(self) -> dict:
        return json.loads(self.proc.stdout.readline())

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.wait(timeout=30)


async def read_answer(stream: trio.SocketStream, reader: FrameReader, pending: list) -> bytes:
    while not pending:
        data = await stream.receive_some(4096)
        if not data:
            raise EOFError("gateway hung up")
        pending.extend(reader.feed(data))
    return pending.pop(0)


async def run_terminal(i: int, port: int, start_at: float, stop_at: float, interval: float, stats: dict) -> None:
    phone = phone_of(i)
    rng = random.Random(i)
    await trio.sleep_until(start_at + rng.uniform(0, min(interval, 5.0)))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    reader = FrameReader()
    pending: list = []
    try:
        for frame in (register_frame(phone), auth_frame(phone)):
            await stream.send_all(frame)
            await read_answer(stream, reader, pending)
        stats["connected"] += 1
        await trio.sleep_until(stats["reports_from"] + rng.uniform(0, interval))
        serial = 2
        while trio.current_time() < stop_at:
            serial += 1
            sent = trio.current_time()
            await stream.send_all(location_frame(phone, serial, time.time(), rng))
            stats["sent"] += 1
            answer = await read_answer(stream, reader, pending)
            if answer[-5:] == struct.pack(">HHB", serial, 0x0200, 0):
                stats["acked"] += 1
                stats["latency_ms"].append((trio.current_time() - sent) * 1000)
            await trio.sleep(interval)
    except (OSError, EOFError, trio.BrokenResourceError):
        stats["failed"] += 1
    finally:
        await stream.aclose()


async def bench_capacity(terminals: int, duration: float, interval: float) -> dict:
    gateway = GatewayProcess()
    stats = {"connected": 0, "sent": 0, "acked": 0, "failed": 0, "latency_ms": []}
    try:
        now = trio.current_time()
        stats["reports_from"] = now + 6.0
        stop_at = stats["reports_from"] + duration
        async with trio.open_nursery() as nursery:
            for i in range(terminals):
                nursery.start_soon(run_terminal, i, gateway.port, now, stop_at, interval, stats)
            await trio.sleep_until(stats["reports_from"])
            cpu_start = gateway.ask("cpu")["cpu_s"]
            await trio.sleep_until(stop_at)
            cpu_end = gateway.ask("cpu")["cpu_s"]
        final = gateway.ask("stop")
    finally:
        gateway.close()
    latencies = sorted(stats["latency_ms"]) or [0.0]
    steady_cpu = cpu_end - cpu_start
    return {
        "terminals": terminals,
        "connected": stats["connected"],
        "interval_s": interval,
        "duration_s": duration,
        "reports_sent": stats["sent"],
        "reports_acked": stats["acked"],
        "terminals_failed": stats["failed"],
        "fixes_in_sink": final["fixes"],
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "gateway_cpu_s": round(steady_cpu, 3),
        "gateway_cpu_pct": round(100 * steady_cpu / duration, 2),
        "gateway_cpu_ms_per_report": round(1000 * steady_cpu / max(stats["acked"], 1), 3),
        "gateway_cpu_s_total": round(final["cpu_s"], 3),
        "rejects": final["rejects"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=500)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        trio.run(gateway_process_main)
        return {}
    decode = bench_decode()
    capacity = trio.run(bench_capacity, args.terminals, args.duration, args.interval)
    print(f"{'JT/T 808, one core':<44}{'':>16}")
    print(f"{'  decode only (0x0200 -> Fix)':<44}{decode['decode_only']:>12,.0f} /s")
    print(f"{'  framing + decode':<44}{decode['framing_and_decode']:>12,.0f} /s")
    print(f"{'  session path (+ alarms, 0x8001 answer)':<44}{decode['session_path']:>12,.0f} /s")
    print(f"{'loopback gateway':<44}")
    print(f"{'  terminals connected / asked':<44}{capacity['connected']:>12} / {capacity['terminals']}")
    print(f"{'  reports acknowledged / sent':<44}{capacity['reports_acked']:>12} / {capacity['reports_sent']}")
    print(f"{'  answer latency p50 / p99':<44}{capacity['latency_ms_p50']:>12} / {capacity['latency_ms_p99']} ms")
    print(f"{'  gateway CPU over the report phase':<44}{capacity['gateway_cpu_pct']:>12} %")
    print(f"{'  gateway CPU per report':<44}{capacity['gateway_cpu_ms_per_report']:>12} ms")
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "fixes_per_second": {k: round(v) for k, v in decode.items()},
        "loopback": capacity,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS}")
    return result


if __name__ == "__main__":
    main()
