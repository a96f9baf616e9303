-- What a sensor measured, every record of it: the map's chart of a sensor's last day and
-- its latest values. Kept for [retention] sensor_readings_days, deleted by receipt time.
CREATE TABLE sensor_readings (
    device     text NOT NULL,
    t          timestamptz NOT NULL,
    rx         timestamptz NOT NULL,
    component  text NOT NULL CHECK (component ~ '^[0-9]{16}$'),
    kind       text NOT NULL,
    tilt       real,
    water      real,
    gas        real,
    smoke      boolean,
    fill       real,
    level      real,
    bat        real,
    PRIMARY KEY (device, t, kind)
);
CREATE INDEX sensor_readings_rx ON sensor_readings (rx);

-- The limit an alarm's value was judged against (a tilt threshold, a bin's fill level,
-- a water level, a vehicle's speed limit), beside the value it already stores.
ALTER TABLE alarm_events ADD COLUMN alarm_limit double precision;
