-- Patrol plans (responsibility grids, shifts, exceptions) as versioned documents, patrol
-- alert episodes (the supervisors' outbox), and checkpoints of the coverage engine.

CREATE TABLE patrol_plans (
    version   serial PRIMARY KEY,
    saved_at  timestamptz NOT NULL DEFAULT now(),
    note      text NOT NULL DEFAULT '',
    plan      jsonb NOT NULL
);

-- One row per alert episode: raised once, updated in place, resolved with a reason.
CREATE TABLE patrol_alerts (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    collector    text NOT NULL,
    slot_id      text NOT NULL,
    area         text NOT NULL,
    grid         text,
    slot_start   timestamptz NOT NULL,
    slot_end     timestamptz NOT NULL,
    raised_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolution   text,
    detail       jsonb NOT NULL,
    text         text NOT NULL
);
CREATE UNIQUE INDEX patrol_alerts_episode ON patrol_alerts (kind, collector, slot_id, coalesce(grid, ''), raised_at);
CREATE INDEX patrol_alerts_open ON patrol_alerts (raised_at) WHERE resolved_at IS NULL;

CREATE TABLE patrol_checkpoints (
    id        integer PRIMARY KEY CHECK (id = 1),
    saved_at  timestamptz NOT NULL DEFAULT now(),
    state     jsonb NOT NULL
);
