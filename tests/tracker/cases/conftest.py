"""A case engine on a real, migrated PostgreSQL with the demo city's grids and the demo's
example taxonomy, its clock a settable instant (``world.at(...)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import trio

from geofence.index import GridIndex
from protocols.epoch import datetime_to_ms
from tests.harness import store_task
from tracker.app.service import import_grids
from tracker.cases.engine import CaseEngine
from tracker.cases.roles import Actor
from tracker.config import CasesSettings
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.storage.store import Store

CITY = ZoneInfo("Asia/Shanghai")
# in Anning (620105): grid 620105003003010; in Qilihe (620103) see QILIHE
ANNING = (36.1050, 103.7200)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CITY)  # type: ignore[misc]


@dataclass
class World:
    store: Store
    engine: CaseEngine
    index: GridIndex
    instant: list[datetime] = field(default_factory=lambda: [local(2025, 9, 24, 9, 0)])
    published: list[tuple[str, dict, str | None]] = field(default_factory=list)

    def at(self, when: datetime) -> None:
        self.instant[0] = when

    def engine_again(self) -> CaseEngine:
        """A new engine on the same database (as after a restart)."""
        return make_engine(self.store, self.index, self.instant, self.published)


def make_engine(store: Store, index: GridIndex, instant: list[datetime], published: list) -> CaseEngine:
    return CaseEngine(store, CasesSettings().calendar(), clock_ms=lambda: datetime_to_ms(instant[0]), index=index,
                      publish=lambda kind, payload, district: published.append((kind, payload, district)),
                      warn_share=0.8)


COMMANDER = Actor("cmd-anning", "commander", "620105")
CITY_COMMANDER = Actor("cmd-city", "commander", None)
QILIHE_COMMANDER = Actor("cmd-qilihe", "commander", "620103")
SUPERVISOR = Actor("sup-anning", "supervisor", "620105")
WORKER = Actor("worker-anning", "viewer", "620105")  # a member of 620105-HW
OUTSIDER = Actor("viewer-anning", "viewer", "620105")  # a member of nothing
COLLECTOR = Actor("collector-7", "collector", "620105", device="c0007")


@pytest.fixture
async def world(database, nursery) -> World:
    store = await nursery.start(store_task, database)
    await import_grids(store, str(DEMO_CITY), 12)
    index = GridIndex(12, await store.grid_cells())
    for actor in (COMMANDER, CITY_COMMANDER, QILIHE_COMMANDER, SUPERVISOR, WORKER, OUTSIDER, COLLECTOR):
        # the accounts exist (memberships name them); nobody logs in here, so no password hash
        await store.add_account(actor.account, actor.role, actor.district, "-", actor.device)
    await store.add_department_member("620105-HW", WORKER.account)
    world = World(store, None, index)  # type: ignore[arg-type]
    world.engine = make_engine(store, index, world.instant, world.published)
    await world.engine.load_taxonomy(DEMO_TAXONOMY.read_text(encoding="utf-8"), CITY_COMMANDER)
    await trio.sleep(0)
    return world
