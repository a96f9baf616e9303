"""Ingest benchmark: the broker-side ceiling, the service end to end, and live latency.

In one run, on private Mosquitto and PostgreSQL instances:
1. ceiling: a bare paho subscriber that only counts messages, fed single-ping messages
   at full speed by a raw-socket publisher in another process;
2. end to end, single pings: the same load into the service (a `tracker serve`
   subprocess), timed from the first publish until every fix is persisted;
3. end to end, batches of 20 fixes per message;
4. latency: a fixed offered rate of single pings; publish time → arrival in a WebSocket
   delta frame, p50/p95/p99.
Prints a table and writes bench/results/ingest.json.

    python -m bench.ingest [--messages 60000] [--devices 2000] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgpack

from bench.machine import describe
from bench.mqttload import RawPublisher, blast, publish_packet
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.credentials import kept_passwords
from tracker.devcity.starters import Mosquitto, Postgres, free_port, start_mosquitto, start_postgres

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
USERS = {"gridwatch": "bench-svc", "simulator": "bench-pub"}
LAT, LON = 36.1050, 103.7200


def _fix(i: int, t_ms: int, devices: int = 2000) -> dict:
    """Fix number i of a fleet where device i % devices walks north-east about 1 m a fix
    from its own start: realistic enough to pass the position filters."""
    device, step = i % devices, i // devices
    lat = LAT + (device % 50) * 2e-4 + step * 1e-5
    lon = LON + (device // 50 % 50) * 2e-4 + step * 1e-5
    return {"t": t_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc": 5.0, "spd": 1.2, "bat": 80.0, "seq": i}


def single_packets(n: int, devices: int, qos: int = 0, prefix: str = "b") -> list[bytes]:
    now = int(time.time() * 1000)
    return [publish_packet(f"gw/v1/620105/collector/{prefix}{i % devices:05d}/pos", msgpack.packb(_fix(i, now - n + i, devices)),
                           qos, i % 65535 + 1) for i in range(n)]


def batch_packets(n_fixes: int, devices: int, per_batch: int, prefix: str = "k", qos: int = 0) -> list[bytes]:
    now = int(time.time() * 1000)
    packets = []
    for m in range(n_fixes // per_batch):
        device, round_ = m % devices, m // devices
        # one device's batch: per_batch consecutive fixes of its walk, a second apart
        batch = []
        for k in range(per_batch):
            step = round_ * per_batch + k
            fix = _fix(step * devices + device, now - n_fixes * 10 + step * 1000, devices)
            batch.append(fix)
        # devices of their own: the single-ping run's seq numbers would be duplicates here
        packets.append(publish_packet(f"gw/v1/620105/collector/{prefix}{device:05d}/pos", msgpack.packb(batch), qos, m % 65535 + 1))
    return packets


# --- ceiling: a bare subscriber ---------------------------------------------------------

def _bare_subscriber(port: int, expected: int, ready, out) -> None:
    import paho.mqtt.client as paho

    state = {"n": 0, "first": None, "last": None}

    def on_message(client, userdata, msg):
        now = time.perf_counter()
        if state["first"] is None:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= expected:
            client.disconnect()

    def on_connect(client, userdata, flags, rc, props):
        client.subscribe("gw/v1/+/+/+/+", 0)

    def on_subscribe(client, userdata, mid, rcs, props):
        ready.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv311)
    client.username_pw_set("gridwatch", USERS["gridwatch"])
    client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
    client.connect("127.0.0.1", port)
    deadline = time.time() + 120
    while state["n"] < expected and time.time() < deadline:
        client.loop(0.5)
        if state["last"] is not None and time.perf_counter() - state["last"] > 5:
            break
    out.put(state)


def _blast_proc(port: int, packets: list[bytes], out) -> None:
    out.put(blast("127.0.0.1", port, "simulator", USERS["simulator"], packets))


def measure_ceiling(port: int, packets: list[bytes]) -> dict:
    ctx = mp.get_context("fork")
    ready, out, pub_out = ctx.Event(), ctx.Queue(), ctx.Queue()
    sub = ctx.Process(target=_bare_subscriber, args=(port, len(packets), ready, out))
    sub.start()
    ready.wait(10)
    pub = ctx.Process(target=_blast_proc, args=(port, packets, pub_out))
    pub.start()
    state = out.get(timeout=180)
    publish_s = pub_out.get(timeout=60)
    sub.join(10)
    pub.join(10)
    span = (state["last"] - state["first"]) if state["n"] > 1 else float("nan")
    return {"messages": len(packets), "received": state["n"], "rate_msg_s": state["n"] / span if span else 0.0,
            "publish_rate_msg_s": len(packets) / publish_s}


# --- the service ------------------------------------------------------------------------

class Service:
    def __init__(self, broker_port: int, dsn: str, web_port: int, state: Path, qos: int = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ,
                   TRACKER_MQTT__PORT=str(broker_port), TRACKER_MQTT__USERNAME="gridwatch", TRACKER_MQTT__PASSWORD=USERS["gridwatch"],
                   TRACKER_MQTT__QOS=str(qos), TRACKER_MQTT__CLIENT_ID=f"bench-ingest-qos{qos}",
                   TRACKER_DATABASE__DSN=dsn, TRACKER_WEB__PORT=str(web_port), TRACKER_LOG__LEVEL="WARNING",
                   TRACKER_HANDSET__MAX_BATCH="1000", TRACKER_JT808__PORT="0", TRACKER_AUTH__METRICS_TOKEN=METRICS_TOKEN,
                   # the load is made-up devices: the registry lets them in (and is still asked about each message)
                   TRACKER_REGISTRY__UNREGISTERED="accept")
        env.update(extra_env or {})
        self.url = f"http://127.0.0.1:{web_port}"
        self.env = env
        self.log = open(state / f"service-qos{qos}.log", "wb")  # noqa: SIM115 - open for the child's life, closed in stop()
        subprocess.run([sys.executable, "-m", "tracker", "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "tracker", "grids", "import", str(DEMO_CITY)],
                       env=env, check=True, capture_output=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "tracker", "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/healthz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("service did not become healthy; see service.log")

    def scrape(self) -> str:
        """/metrics, with the metrics token."""
        request = urllib.request.Request(self.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.read().decode()

    def api_token(self) -> str:
        """A viewer's API token, made with `tracker accounts` (for the live feed)."""
        name = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        subprocess.run([sys.executable, "-m", "tracker", "accounts", "add", name, "--role", "viewer", "--scope", "city"],
                       env=self.env, check=True, capture_output=True)
        out = subprocess.run([sys.executable, "-m", "tracker", "accounts", "token", "create", name], env=self.env, check=True,
                             capture_output=True, text=True).stdout
        return out.split(": ", 1)[1].split()[0]

    def metric(self, name: str) -> float:
        text = self.scrape()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def measure_end_to_end(service: Service, port: int, packets: list[bytes], fixes: int) -> dict:
    start_persisted = service.metric("gridwatch_persisted_total")
    start_cpu = service.cpu_seconds()
    ctx = mp.get_context("fork")
    pub_out = ctx.Queue()
    t0 = time.perf_counter()
    pub = ctx.Process(target=_blast_proc, args=(port, packets, pub_out))
    pub.start()
    done = start_persisted
    last_change, last = time.perf_counter(), done
    while done - start_persisted < fixes:
        time.sleep(0.05)
        done = service.metric("gridwatch_persisted_total")
        if done != last:
            last, last_change = done, time.perf_counter()
        elif time.perf_counter() - last_change > 10:
            break
    elapsed = last_change - t0
    publish_s = pub_out.get(timeout=60)
    pub.join(10)
    persisted = done - start_persisted
    return {"fixes": fixes, "messages": len(packets), "persisted": persisted, "seconds": elapsed,
            "rate_fixes_s": persisted / elapsed, "publish_rate_msg_s": len(packets) / publish_s,
            "service_cpu_s": service.cpu_seconds() - start_cpu}


def _paced_publisher(port: int, rate: int, seconds: float, devices: int, out) -> None:
    pub = RawPublisher("127.0.0.1", port, "simulator", USERS["simulator"], "bench-paced")
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    sent = i = 0
    while time.perf_counter() - start < seconds:
        now_ms = int(time.time() * 1000)
        chunk = []
        for _ in range(per_tick):
            chunk.append(publish_packet(f"gw/v1/620105/collector/l{i % devices:05d}/pos", msgpack.packb(_fix(i, now_ms, devices))))
            i += 1
        pub.send(b"".join(chunk))
        sent += per_tick
        next_at = start + (sent / rate)
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    pub.close()
    out.put(sent)


def measure_latency(service: Service, port: int, rate: int, seconds: float, devices: int) -> dict:
    from websockets.sync.client import connect

    latencies: list[float] = []
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    headers = {"Authorization": f"Bearer {service.api_token()}"}
    with connect(service.url.replace("http", "ws") + "/ws", max_size=None, additional_headers=headers) as ws:
        ws.recv()  # snapshot
        pub = ctx.Process(target=_paced_publisher, args=(port, rate, seconds, devices, out))
        pub.start()
        end = time.time() + seconds + 2
        while time.time() < end:
            try:
                frame = json.loads(ws.recv(timeout=1))
            except TimeoutError:
                continue
            now_ms = time.time() * 1000
            if frame.get("type") == "delta":
                latencies.extend(now_ms - d["t"] for d in frame["devices"] if d["id"].startswith("l"))
        sent = out.get(timeout=30)
        pub.join(10)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
    return {"offered_rate": rate, "sent": sent, "updates_seen": len(latencies), "p50_ms": q[49], "p95_ms": q[94], "p99_ms": q[98],
            "max_ms": latencies[-1] if latencies else float("nan")}



METRICS_TOKEN = secrets.token_urlsafe(24)  # the bench's own service's [auth] metrics_token


def start_services() -> tuple[Path, Mosquitto, Postgres]:
    """A state directory with a private Mosquitto and PostgreSQL in it, for one bench run."""
    state = Path(tempfile.mkdtemp(prefix="gridwatch-bench-"))
    broker = start_mosquitto(state / "mosquitto", 0, USERS)
    passwords = kept_passwords(state / "secrets", ("postgres", "gridwatch"))
    pg = start_postgres(state, 0, superuser_password=passwords["postgres"], role_password=passwords["gridwatch"])
    return state, broker, pg

def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=60000, help="single-ping messages per throughput run")
    parser.add_argument("--batched-fixes", type=int, default=400000, help="fixes in the batch-of-20 run")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=5000, help="offered pings/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args(argv)

    state, broker, pg = start_services()
    results: dict = {**describe()}
    try:
        singles = single_packets(args.messages, args.devices)
        results["ceiling_bare_subscriber"] = measure_ceiling(broker.port, singles)
        service = Service(broker.port, pg.dsn, free_port(), state)
        try:
            results["e2e_single"] = measure_end_to_end(service, broker.port, single_packets(args.messages, args.devices), args.messages)
            batches = batch_packets(args.batched_fixes, args.devices, 20)
            results["e2e_batch20"] = measure_end_to_end(service, broker.port, batches, len(batches) * 20)
            results["latency"] = measure_latency(service, broker.port, args.rate, args.seconds, args.devices)
        finally:
            service.stop()
        # durable delivery: QoS 1 publishes into a QoS 1 session, acknowledged after commit
        # (devices of their own: the runs above stored fixes at the same times)
        service = Service(broker.port, pg.dsn, free_port(), state, qos=1)
        try:
            singles = single_packets(args.messages, args.devices, qos=1, prefix="q")
            results["e2e_single_qos1"] = measure_end_to_end(service, broker.port, singles, args.messages)
            batches = batch_packets(args.batched_fixes, args.devices, 20, prefix="r", qos=1)
            results["e2e_batch20_qos1"] = measure_end_to_end(service, broker.port, batches, len(batches) * 20)
        finally:
            service.stop()
    finally:
        pg.discard()
        broker.discard()
    ceiling = results["ceiling_bare_subscriber"]["rate_msg_s"]
    single = results["e2e_single"]["rate_fixes_s"]
    results["e2e_single_vs_ceiling"] = single / ceiling if ceiling else float("nan")
    durable = results["e2e_single_qos1"]["rate_fixes_s"]
    results["e2e_single_qos1_vs_ceiling"] = durable / ceiling if ceiling else float("nan")
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2))
    return results


def _print(r: dict) -> None:
    c, s, b, lat = r["ceiling_bare_subscriber"], r["e2e_single"], r["e2e_batch20"], r["latency"]
    print(f"\nIngest benchmark — {r['machine']['cpus']} cores, {r['machine']['cpu']}, Python {r['machine']['python']}")
    print(f"{'measure':<48}{'figure':>16}   note")
    print(f"{'ceiling: bare paho subscriber, single pings':<48}{c['rate_msg_s']:>12,.0f} /s   "
          f"{c['received']:,}/{c['messages']:,} received; offered {c['publish_rate_msg_s']:,.0f}/s")
    print(f"{'service end to end, single pings':<48}{s['rate_fixes_s']:>12,.0f} /s   "
          f"{r['e2e_single_vs_ceiling']:.0%} of ceiling; {s['persisted']:,.0f}/{s['fixes']:,} persisted")
    print(f"{'service end to end, batches of 20':<48}{b['rate_fixes_s']:>12,.0f} /s   "
          f"{b['persisted']:,.0f}/{b['fixes']:,} persisted; {b['messages']:,} messages")
    s1, b1 = r["e2e_single_qos1"], r["e2e_batch20_qos1"]
    print(f"{'durable (QoS 1, ack after commit), single pings':<48}{s1['rate_fixes_s']:>12,.0f} /s   "
          f"{r['e2e_single_qos1_vs_ceiling']:.0%} of ceiling, {s1['rate_fixes_s'] / s['rate_fixes_s']:.0%} of QoS 0; "
          f"{s1['persisted']:,.0f}/{s1['fixes']:,} persisted")
    print(f"{'durable (QoS 1, ack after commit), batches of 20':<48}{b1['rate_fixes_s']:>12,.0f} /s   "
          f"{b1['rate_fixes_s'] / b['rate_fixes_s']:.0%} of QoS 0; {b1['persisted']:,.0f}/{b1['fixes']:,} persisted")
    latency = f"publish → WebSocket latency at {lat['offered_rate']:d} pings/s"
    p50 = f"p50 {lat['p50_ms']:.0f} ms"
    print(f"{latency:<48}{p50:>16}   p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms "
          f"({lat['updates_seen']:,} updates)")


if __name__ == "__main__":
    main()
