"""On-site verification: who is proposed, the task sent, the arrival noticed.

- **Candidates**: the collectors nearest to a case, by their live position (the pipeline's
  live state), on duty now per the patrol plan's slots (every collector when no plan is
  loaded), the case's grid marked when it is in the collector's responsibility area; found
  by ``geofence.nearby``'s ring search outward from the case.
- **The task**: when a case is given to a collector to verify (the ``verify`` action), the
  collector's handset gets it on its ``…/cmd`` topic, an OwnTracks phone a waypoint at the
  case and a message (OwnTracks' ``setWaypoints`` and ``action`` commands).
- **Arrival**: the collector's own fixes entering the case's unit grid, or within
  ``radius_m`` of it, are recorded on the case's timeline, once per task. The tasks being
  watched are rebuilt at start from the cases waiting for verification.

The verification report (``tracker.cases.handset``) or a commander's close/reopen ends it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from geofence.nearby import CollectorIndex, Position
from geofence.placed import PlacedSlice
from geofence.schedule import Schedule
from protocols.coords import distance_m
from protocols.model import DeviceClass
from tracker.cases.engine import CaseEngine, CaseError
from tracker.cases.roles import SERVICE, SYSTEM, Actor
from tracker.live.state import LiveState

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # (topic, payload) at QoS 1


@dataclass(frozen=True, slots=True)
class Task:
    case: int
    device: str
    lat: float | None
    lon: float | None
    grid: str | None


class Verification:
    def __init__(self, engine: CaseEngine, live: LiveState, publish: Publish, *, radius_m: float = 50.0,
                 owntracks: Mapping[str, tuple[str, str]] | None = None,
                 plan: Callable[[], Any] | None = None) -> None:
        """``owntracks``: device → (OwnTracks user, device name) of phones running the app;
        ``plan``: the patrol plan in force (None: no plan, everybody counts as on duty)."""
        self.engine = engine
        self.live = live
        self.publish = publish
        self.radius_m = radius_m
        self.owntracks = dict(owntracks or {})
        self.plan = plan or (lambda: None)
        self.tasks: dict[str, Task] = {}  # collector → the verification it is on its way to
        self._schedules: dict[int, Schedule] = {}
        self._send, self._recv = trio.open_memory_channel[tuple[str, Any]](1000)

    # --- candidates -------------------------------------------------------------------

    async def candidates(self, case_id: int, actor: Actor, k: int = 3, max_m: float = 3000.0) -> dict[str, Any]:
        """The ``k`` nearest collectors on duty within ``max_m`` of the case, nearest first.
        Raises ``CaseNotFound`` (not in the actor's scope), ``CaseError`` (no position)."""
        case = await self.engine.get(case_id, actor)
        if case["lat"] is None or case["lon"] is None:
            raise CaseError(f"case {case_id} has no position: nobody can be proposed")
        now = self.engine.clock_ms()
        plan = self.plan()
        on_duty: dict[str, str] | None = None  # collector → its area now
        if plan is not None:
            on_duty = {slot.collector: slot.area for slot in self._schedule(plan).slots_overlapping(now, now + 1)}
        positions = [Position(device, placed.fix.lat, placed.fix.lon, placed.fix.t_ms)
                     for device, placed in list(self.live.devices.items())
                     if placed.fix.device_class is DeviceClass.COLLECTOR and actor.sees(placed.fix.district)]
        where = {p.device: p for p in positions}
        index = CollectorIndex(positions)
        responsible: dict[str, bool] = {}
        if plan is not None and on_duty is not None and case["grid"] is not None:
            responsible = {device: case["grid"] in plan.areas.get(area, ("", ()))[1] for device, area in on_duty.items()}
        found = index.nearest(case["lat"], case["lon"], k=k, max_m=max_m, on_duty=on_duty, responsible=responsible)
        return {"case": case_id, "plan": plan is not None,
                "candidates": [{"device": c.device, "name": self._label(c.device), "lat": where[c.device].lat,
                                "lon": where[c.device].lon, "distance_m": round(c.distance_m, 1), "t": c.t_ms,
                                "in_grid": c.in_grid, "area": (on_duty or {}).get(c.device)} for c in found]}

    def _label(self, device: str) -> str:
        """The collector's name as the map shows it (the registry's label), else the id."""
        view = self.live.view(device)
        label = view.get("label") if view is not None else None
        return label if isinstance(label, str) and label else device

    def _schedule(self, plan: Any) -> Schedule:
        key = id(plan)
        if key not in self._schedules:
            self._schedules = {key: plan.schedule()}
        return self._schedules[key]

    # --- the task ---------------------------------------------------------------------

    def on_case(self, kind: str, payload: dict, district: str | None) -> None:
        """The engine's live events, seen on their way to the hub: a ``verify`` starts a task,
        a case leaving verification ends its collector's."""
        if kind != "case":
            return
        case = payload.get("case", {})
        starts = payload.get("action") == "verify"
        ends = case.get("state") != "verifying" and any(task.case == case.get("id") for task in self.tasks.values())
        if starts or ends:
            try:
                self._send.send_nowait(("case", case.get("id")))
            except trio.WouldBlock:  # never holds up the change itself: load() finds it at the next start
                log.error("verification of case %s not followed: %d changes waiting", case.get("id"),
                          self._send.statistics().current_buffer_used)

    async def load(self) -> None:
        """The tasks of the cases waiting for verification, those arrived left out."""
        rows, cursor = await self.engine.list(SERVICE, state="verifying", limit=500)
        while True:
            for row in rows:
                await self._follow(row["id"], send=False)
            if cursor is None:
                break
            rows, cursor = await self.engine.list(SERVICE, state="verifying", limit=500, cursor=cursor)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for what, value in self._recv:
            try:
                if what == "case":
                    await self._follow(value, send=True)
                else:
                    await self._arrived(value)
            except Exception:  # one case's trouble must not end verification for the rest
                log.exception("verification of case %s", value if what == "case" else value[0].case)

    async def _follow(self, case_id: int, *, send: bool) -> None:
        row = await self.engine.store.case(case_id)
        for device, task in list(self.tasks.items()):
            if task.case == case_id:
                del self.tasks[device]
        if row is None or row["state"] != "verifying" or row["verifier"] is None:
            return
        task = Task(case_id, row["verifier"], row["lat"], row["lon"], row["grid"])
        entries = await self.engine.store.case_timeline(case_id)
        since_verify = entries[max(i for i, e in enumerate(entries) if e["action"] == "verify"):] if any(
            e["action"] == "verify" for e in entries) else entries
        if not send and any(e["action"] == "arrived" for e in since_verify):
            return
        self.tasks[task.device] = task
        if send:
            self._send_task(row)

    def _send_task(self, row: Any) -> None:
        device = row["verifier"]
        due = row["stage_due"]
        deadline = due.astimezone(self.engine.calendar.zone).isoformat() if due is not None else None
        placed = self.live.devices.get(device)
        if device in self.owntracks:
            user, phone = self.owntracks[device]
            for message in owntracks_task(row, deadline, self.radius_m):
                self.publish(f"owntracks/{user}/{phone}/cmd", json.dumps(message).encode())
            return
        district = placed.fix.district if placed is not None else row["district"]
        body = {"type": "verify", "case": row["id"], "lat": row["lat"], "lon": row["lon"], "grid": row["grid"],
                "category": row["category"], "description": row["description"], "deadline": deadline}
        self.publish(f"gw/v1/{district}/collector/{device}/cmd", json.dumps(body, ensure_ascii=False).encode())

    # --- arrival ----------------------------------------------------------------------

    def observe(self, part: PlacedSlice) -> None:
        """A pipeline fix listener: a verifier's fix at its case is its arrival."""
        if not self.tasks:
            return
        for fix, grid in zip(part.fixes, part.grids, strict=True):
            task = self.tasks.get(fix.device)
            if task is None:
                continue
            there = (grid is not None and grid == task.grid) or (
                task.lat is not None and task.lon is not None
                and distance_m(fix.lat, fix.lon, task.lat, task.lon) <= self.radius_m)
            if there:
                del self.tasks[fix.device]
                try:
                    self._send.send_nowait(("arrived", (task, fix.t_ms, fix.lat, fix.lon)))
                except trio.WouldBlock:  # a thousand arrivals unwritten: noted again by the next fix
                    self.tasks[fix.device] = task

    async def _arrived(self, value: tuple[Task, int, float, float]) -> None:
        task, t_ms, lat, lon = value
        away = (round(distance_m(lat, lon, task.lat, task.lon), 1)
                if task.lat is not None and task.lon is not None else None)
        # the collector's own fix says it: recorded as the collector's step
        await self.engine.record(task.case, "arrived", Actor(task.device, SYSTEM, None, device=task.device,
                                                             source="fix"),
                                 {"collector": task.device, "fix_t": t_ms, "lat": lat, "lon": lon, "distance_m": away},
                                 note="on site")


def owntracks_task(row: Any, deadline: str | None, radius_m: float) -> list[dict[str, Any]]:
    """The task as OwnTracks' commands: a waypoint at the case (the app reports entering
    it) and a message naming the case."""
    desc = f"case {row['id']} {row['category']}"
    waypoint = {"_type": "waypoint", "desc": desc, "lat": row["lat"], "lon": row["lon"], "rad": int(radius_m),
                "tst": int(row["created_at"].timestamp())}
    text = f"Verify case {row['id']} ({row['category']}): {row['description']}"
    if deadline:
        text += f" by {deadline}"
    messages: list[dict[str, Any]] = [{"_type": "cmd", "action": "action", "content": text}]
    if row["lat"] is not None and row["lon"] is not None:
        messages.insert(0, {"_type": "cmd", "action": "setWaypoints",
                            "waypoints": {"_type": "waypoints", "waypoints": [waypoint]}})
    return messages
