-- The device registry: every device the service accepts data from, with who or what it
-- is. A table of its own rather than columns of `devices`: `devices` is ingest's (last
-- position, written in bulk every couple of seconds by the pipeline) and only ever holds
-- devices that reported; the registry is written by people, holds devices before their
-- first report, and is what ingest consults (from memory, reloaded when this changes).
CREATE TABLE registered_devices (
    id           text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    class        text NOT NULL CHECK (class IN ('collector', 'vehicle', 'sensor')),
    district     text NOT NULL CHECK (district ~ '^[0-9]{6}$'),
    name         text NOT NULL DEFAULT '',         -- display name
    person       text NOT NULL DEFAULT '',         -- a collector's name
    plate        text NOT NULL DEFAULT '',         -- a vehicle's plate
    phone        text UNIQUE CHECK (phone ~ '^[0-9]{1,20}$'),  -- a JT/T 808 terminal's SIM number
    terminal_id  text NOT NULL DEFAULT '',         -- a JT/T 808 terminal's id (0x0100)
    component    text UNIQUE CHECK (component ~ '^[0-9]{16}$'),  -- a sensor's component code
    enabled      boolean NOT NULL DEFAULT true,
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now(),
    rotated      timestamptz                        -- when its MQTT password was last replaced
);
CREATE INDEX registered_devices_updated ON registered_devices (updated);
