-- Idempotent ingest. The service acknowledges an MQTT message only after what it produced
-- is committed, so the broker delivers again whatever was not acknowledged when the
-- service crashed, stopped or lost its connection. Writing a second copy must store
-- nothing new: each table a message writes to gets a key the writes skip on conflict.
--
-- Should an older database hold rows that share a key (a redelivery stored twice before
-- this migration), the first one stored is kept.

-- Positions: one per device and fix time. pings is partitioned by day on t, so a unique
-- index including t is allowed; it replaces the plain (device, t) index, which served
-- "track of device X between T1 and T2" and which the unique one serves as well.
DELETE FROM pings a USING pings b
 WHERE a.tableoid = b.tableoid AND a.device = b.device AND a.t = b.t AND a.ctid > b.ctid;
DROP INDEX pings_device_t;
CREATE UNIQUE INDEX pings_device_t ON pings (device, t);

-- Refused fixes: one per device, fix time and reason (a fix refused again for the same
-- reason is the same record). Replaces the plain (device, t) index likewise.
DELETE FROM filtered_fixes a USING filtered_fixes b
 WHERE a.device = b.device AND a.t = b.t AND a.reason = b.reason AND a.ctid > b.ctid;
DROP INDEX filtered_fixes_device_t;
CREATE UNIQUE INDEX filtered_fixes_device_t ON filtered_fixes (device, t, reason);

-- Alarm events: an edge (raised or cleared) of one kind, from one device of one source,
-- at one instant, happens once. The outbox keeps the first; its consumers see no copy.
DELETE FROM alarm_events a USING alarm_events b
 WHERE a.source = b.source AND a.device = b.device AND a.kind = b.kind AND a.t = b.t AND a.raised = b.raised
   AND a.id > b.id;
CREATE UNIQUE INDEX alarm_events_edge ON alarm_events (source, device, kind, t, raised);
