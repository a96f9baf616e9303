"""The closed loop end to end, on the test broker (dynamic security plugin) and a real
database: a manhole tilt alarm published over MQTT becomes one case (on /ws as a "case"
event), a commander files, dispatches and, from the proposed candidates, sends the nearest
collector to verify; the collector's handset, logged in as itself, gets the task on its
cmd topic, its fixes entering the case's grid mark its arrival, and its verification
report, published on its report topic, closes the case. The timeline shows every step
with who and when."""

from __future__ import annotations

import json
import threading
import time

import httpx
import msgpack
import trio
from websockets.trio.client import connect as ws_connect

from tests.harness import GRID, LAT, LON, new_account, start_service, ws_url
from tests.helpers import apublish, wait_for, ws_until
from tests.tracker.registry.devices import Connected
from tracker.app.accounts import create_token
from tracker.cases.engine import Actor
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.registry.model import RegisteredDevice
from tracker.registry.provisioning import Provisioning, control_account

COVER = "6201050101000007"  # a manhole cover: its component code files it under C0101


async def signed_in(store, role: str, district: str | None) -> tuple[str, dict[str, str]]:
    name, _ = await new_account(store, role=role, district=district)
    issued = await create_token(store, name, "tests", actor="test")
    return name, {"Authorization": f"Bearer {issued.token}"}


class Handset:
    """A collector's handset on its own broker account, listening on its cmd topic."""

    def __init__(self, broker, device: str, password: str) -> None:
        self.device = device
        self.link = Connected(broker, device, password)
        assert self.link.refused is None, self.link.refused
        self.commands: list[dict] = []
        self.subscribed = threading.Event()
        self.link.client.on_message = lambda client, userdata, message: self.commands.append(json.loads(message.payload))
        self.link.client.on_subscribe = lambda *args: self.subscribed.set()
        self.link.client.subscribe(f"gw/v1/620105/collector/{device}/cmd", qos=1)
        assert self.subscribed.wait(5)

    def send(self, kind: str, doc: dict) -> None:
        self.link.publish(f"gw/v1/620105/collector/{self.device}/{kind}", msgpack.packb(doc))


async def test_a_tilt_alarm_goes_round_the_closed_loop_to_its_verification_on_site(settings, broker, nursery):
    settings = settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY))
    store, running = await start_service(nursery, settings)
    commander, headers = await signed_in(store, "commander", "620105")
    worker, _ = await new_account(store, role="viewer", district="620105")
    await store.add_department_member("620105-SZ", worker)
    password, far_password = await Provisioning(store, control_account(settings), running.registry).add_all([
        RegisteredDevice.new("c9101", "collector", "620105"), RegisteredDevice.new("c9102", "collector", "620105")])
    near = await trio.to_thread.run_sync(Handset, broker, "c9101", password)
    far = await trio.to_thread.run_sync(Handset, broker, "c9102", far_password)
    now = int(time.time() * 1000)
    # both collectors on their rounds, c9101 some 300 m from the manhole, c9102 some 900 m
    await trio.to_thread.run_sync(near.send, "pos", {"t": now - 600_000, "lat": LAT + 0.0027, "lon": LON, "acc": 5})
    await trio.to_thread.run_sync(far.send, "pos", {"t": now - 600_000, "lat": LAT + 0.0081, "lon": LON, "acc": 5})
    await wait_for(lambda: {"c9101", "c9102"} <= set(running.pipeline.live.devices))

    async with ws_connect(ws_url(running), additional_headers=headers) as ws, \
            httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        await ws.recv()
        alarm = "gw/v1/620105/sensor/mh-0007/alarm"
        record = {"dev": "mh-0007", "comp": COVER, "type": "manhole", "kind": "alarm", "alarm": "tilt", "tilt": 35.5}
        await apublish(broker, [
            ("gw/v1/620105/sensor/mh-0007/pos", msgpack.packb({"t": now - 10_000, "lat": LAT, "lon": LON, "acc": 3.0})),
            (alarm, msgpack.packb({**record, "t": now - 4000})),
            (alarm, msgpack.packb({**record, "t": now - 2000, "tilt": 40.0})),  # still tilted: the same episode
        ])
        event = await ws_until(ws, lambda f: f["type"] == "case" and f["event"] == "created")
        assert (event["case"]["source"], event["case"]["category"], event["case"]["grid"]) == ("sensor", "C0101", GRID)
        cid = event["case"]["id"]
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_alarm_intake_total", decision="open") == 1)

        r = await http.get("/api/cases", headers=headers, params={"source": "sensor"})
        assert [c["id"] for c in r.json()["cases"]] == [cid]  # one case for the cover, however often it tilts

        for action, body in (("file", {}), ("dispatch", {"department": "620105-SZ"})):
            r = await http.post(f"/api/cases/{cid}/actions/{action}", headers=headers, json=body)
            assert r.status_code == 200, r.text
        await running.cases.transition(cid, "handle", Actor(worker, "viewer", "620105"), {"feedback": "cover reset"})

        _, qilihe = await signed_in(store, "commander", "620103")
        assert (await http.get(f"/api/cases/{cid}/candidates", headers=qilihe)).status_code == 404
        r = await http.get(f"/api/cases/{cid}/candidates", headers=headers, params={"k": "many"})
        assert r.status_code == 400 and "k must be" in r.json()["error"]
        r = await http.get(f"/api/cases/{cid}/candidates", headers=headers)
        assert r.status_code == 200, r.text
        proposed = [c["device"] for c in r.json()["candidates"]]
        assert proposed == ["c9101", "c9102"]
        r = await http.post(f"/api/cases/{cid}/actions/verify", headers=headers, json={"collector": proposed[0]})
        assert r.status_code == 200 and r.json()["state"] == "verifying", r.text

        await wait_for(lambda: near.commands)
        [task] = near.commands
        assert (task["type"], task["case"], task["grid"], task["category"]) == ("verify", cid, GRID, "C0101")
        assert (task["lat"], task["lon"]) == (LAT, LON) and task["deadline"] and task["description"]
        assert far.commands == []

        # on the way (still outside), then in the case's grid, at a walking pace
        t = int(time.time() * 1000)
        await trio.to_thread.run_sync(near.send, "pos", {"t": t - 300_000, "lat": LAT + 0.0015, "lon": LON, "acc": 5})
        await trio.to_thread.run_sync(near.send, "pos", {"t": t - 1000, "lat": LAT + 0.0001, "lon": LON, "acc": 5})
        await ws_until(ws, lambda f: f["type"] == "case" and f.get("action") == "arrived")

        await trio.to_thread.run_sync(near.send, "report", {"id": "v-1", "t": t, "verify": {"case": cid, "result": "done"},
                                                            "note": "cover back in place"})
        closed = await ws_until(ws, lambda f: f["type"] == "case" and f["case"]["state"] == "closed")
        assert closed["case"]["id"] == cid

        r = await http.get(f"/api/cases/{cid}/timeline", headers=headers)
        steps = [(e["action"], e["actor"], e["state"]) for e in r.json()["timeline"]]
        assert all(e["at"] for e in r.json()["timeline"])
    near.link.close()
    far.link.close()
    assert steps == [("create", "system", "reported"), ("file", commander, "filed"), ("dispatch", commander, "dispatched"),
                     ("handle", worker, "handled"), ("verify", commander, "verifying"),
                     ("arrived", "c9101", "verifying"), ("close", "c9101", "closed")]
