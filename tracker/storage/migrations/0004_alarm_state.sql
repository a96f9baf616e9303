-- What the alarm rules must keep across a restart.
--
-- One row per component sensor: its rule state (raised alarms, a tilt being debounced,
-- toggles towards flapping), when it was last heard and whether it was declared silent.
-- Written in the same transaction as the alarm events its changes produced, so the state
-- a restart resumes from and the outbox never disagree (alerts/sensors.py).
CREATE TABLE sensor_states (
    device     text PRIMARY KEY,
    component  text NOT NULL CHECK (component ~ '^[0-9]{16}$'),
    last_seen  timestamptz,
    silent     boolean NOT NULL,
    rules      jsonb NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);

-- The newest event of each (device, kind) of a source, read on start: the open episodes
-- of vehicle terminals (their alarm edges are their state), and of sensors with no saved
-- state.
CREATE INDEX alarm_events_latest ON alarm_events (source, device, kind, id DESC) INCLUDE (raised, t);
