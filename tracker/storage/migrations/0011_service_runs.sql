-- When the service observed: each run from its start to its clean stop or, after a
-- crash, to its last heartbeat. Coverage of a time no run covers is unknown, not zero.
CREATE TABLE service_runs (
    id bigserial PRIMARY KEY,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at timestamptz,
    CHECK (heartbeat_at >= started_at),
    CHECK (stopped_at IS NULL OR stopped_at >= started_at)
);
CREATE INDEX service_runs_span ON service_runs (started_at, heartbeat_at);
