-- Fixes the position filters refused (kept for inspection), and alarm events from
-- component sensors and vehicle terminals: the outbox the incident engine consumes.

CREATE TABLE filtered_fixes (
    device  text NOT NULL,
    t       timestamptz NOT NULL,
    rx      timestamptz NOT NULL,
    lat     double precision NOT NULL,
    lon     double precision NOT NULL,
    acc     real,
    spd     real,
    seq     bigint,
    reason  text NOT NULL
);
CREATE INDEX filtered_fixes_device_t ON filtered_fixes (device, t);

CREATE TABLE alarm_events (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL CHECK (source IN ('sensor', 'vehicle', 'handset')),
    device      text NOT NULL,
    component   text CHECK (component IS NULL OR component ~ '^[0-9]{16}$'),
    kind        text NOT NULL,
    raised      boolean NOT NULL,
    t           timestamptz NOT NULL,
    value       double precision,
    detail      text NOT NULL DEFAULT '',
    lat         double precision,
    lon         double precision,
    grid        text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    consumed_at timestamptz
);
CREATE INDEX alarm_events_pending ON alarm_events (id) WHERE consumed_at IS NULL;
CREATE INDEX alarm_events_device_t ON alarm_events (device, t);

-- Sensors bound to their component ("one manhole, one number") and position.
CREATE TABLE components (
    code        text PRIMARY KEY CHECK (code ~ '^[0-9]{16}$'),
    device      text UNIQUE,
    lat         double precision,
    lon         double precision,
    grid        text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
