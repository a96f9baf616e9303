-- Devices, the city's grid hierarchy with H3 covers, positions partitioned by day,
-- and a bounded sample of payloads that failed decoding.

CREATE TABLE devices (
    id          text PRIMARY KEY,
    class       text NOT NULL CHECK (class IN ('collector', 'vehicle', 'sensor')),
    district    text NOT NULL CHECK (district ~ '^[0-9]{6}$'),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_t      timestamptz,
    last_rx     timestamptz,
    last_lat    double precision,
    last_lon    double precision,
    last_acc    real,
    last_spd    real,
    last_hdg    real,
    last_bat    real,
    last_cell   bigint,
    last_grid   text
);

CREATE TABLE streets (
    code      text PRIMARY KEY CHECK (code ~ '^[0-9]{9}$'),
    district  text NOT NULL CHECK (district ~ '^[0-9]{6}$'),
    name      text NOT NULL
);

CREATE TABLE communities (
    code    text PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
    street  text NOT NULL REFERENCES streets (code),
    name    text NOT NULL
);

-- Unit grids as imported: geometry in WGS-84, and the source geometry and CRS as given.
CREATE TABLE grids (
    code             text PRIMARY KEY CHECK (code ~ '^[0-9]{15}$'),
    district         text NOT NULL,
    street           text NOT NULL REFERENCES streets (code),
    community        text NOT NULL REFERENCES communities (code),
    name             text,
    geometry         jsonb NOT NULL,
    source_geometry  jsonb NOT NULL,
    source_crs       text NOT NULL,
    area_m2          double precision NOT NULL,
    imported_at      timestamptz NOT NULL DEFAULT now()
);

-- The H3 cover: every cell belongs to exactly one grid.
CREATE TABLE grid_cells (
    cell        bigint PRIMARY KEY,
    grid        text NOT NULL REFERENCES grids (code) ON DELETE CASCADE,
    resolution  smallint NOT NULL
);
CREATE INDEX grid_cells_grid ON grid_cells (grid);

-- Positions, WGS-84, by fix time. Partitions (one per UTC day) are created on demand.
CREATE TABLE pings (
    device  text NOT NULL,
    t       timestamptz NOT NULL,
    rx      timestamptz NOT NULL,
    lat     double precision NOT NULL,
    lon     double precision NOT NULL,
    acc     real,
    spd     real,
    hdg     real,
    alt     real,
    bat     real,
    crs     text NOT NULL,
    seq     bigint,
    cell    bigint NOT NULL,
    grid    text,
    late    boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (t);
-- "track of device X between T1 and T2"
CREATE INDEX pings_device_t ON pings (device, t);

CREATE TABLE dead_letters (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    protocol  text NOT NULL,
    source    text NOT NULL,
    device    text,
    reason    text NOT NULL,
    error     text NOT NULL,
    raw       bytea NOT NULL
);
CREATE INDEX dead_letters_at ON dead_letters (at);
