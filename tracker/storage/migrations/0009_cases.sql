-- Cases (案卷): every alarm and report becomes a case that is filed, dispatched, handled,
-- verified on site and closed, each stage on its clock (alerts/cases/lifecycle.py,
-- deadlines.py). The case row holds the current state and the running stage's clock;
-- the timeline holds every step (who, with which role and scope, when, what), append-only.

-- Each load of a taxonomy file is a version; a case keeps the version it was filed under,
-- so a later file that renames or drops a category does not rewrite old cases.
CREATE TABLE taxonomies (
    version    serial PRIMARY KEY,
    label      text NOT NULL,             -- the file's own version name
    city       text NOT NULL,
    example    boolean NOT NULL,
    digest     text NOT NULL,             -- of the file's text
    source     text NOT NULL,             -- the TOML text as loaded
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    loaded_by  text NOT NULL
);

-- Who may act for a department (its code in the taxonomy): accounts by name.
CREATE TABLE department_members (
    department text NOT NULL,
    account    text NOT NULL REFERENCES accounts (name) ON DELETE CASCADE ON UPDATE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (department, account)
);
CREATE INDEX department_members_account ON department_members (account);

CREATE TABLE cases (
    id                  bigserial PRIMARY KEY,
    state               text NOT NULL CHECK (state IN ('reported', 'rejected', 'filed', 'dispatched', 'returned',
                                                       'parked', 'handled', 'verifying', 'closed')),
    source              text NOT NULL CHECK (source IN ('sensor', 'vehicle', 'handset', 'hotline', 'dispatcher')),
    -- what makes a second report of the same thing the same case: the handset's report id,
    -- an alarm's originator and kind with its episode, a hotline ticket number
    external_id         text,
    category            text NOT NULL,
    taxonomy_version    integer NOT NULL REFERENCES taxonomies (version),
    urgent              boolean NOT NULL DEFAULT false,
    description         text NOT NULL DEFAULT '',
    lat                 double precision,
    lon                 double precision,
    grid                text,
    community           text,
    street              text,
    district            text,             -- NULL: off every grid, the city's
    department          text,             -- who handles it, once dispatched
    stage               text,             -- the running stage (NULL: finished)
    stage_started       timestamptz,
    stage_due           timestamptz,
    stage_warn          timestamptz,
    stage_extension_s   double precision NOT NULL DEFAULT 0,  -- approved extensions, on the stage's clock
    stage_paused_s      double precision NOT NULL DEFAULT 0,  -- time parked, on the stage's clock
    stage_warned_at     timestamptz,      -- the warning of the running stage was given
    stage_overdue_at    timestamptz,      -- its overdue was given
    extension_pending   boolean NOT NULL DEFAULT false,
    extension_hours     double precision,
    parked_since        timestamptz,
    verifier            text,             -- the collector sent to check on site
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    escalated_at        timestamptz,      -- nobody acknowledged it in time: the city's
    grade               text,
    reporter            text,             -- who reported it: device, account, caller reference
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    closed_at           timestamptz
);
CREATE UNIQUE INDEX cases_external ON cases (source, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX cases_district ON cases (district, id DESC);
CREATE INDEX cases_open ON cases (stage_due) WHERE stage IS NOT NULL;
CREATE INDEX cases_department ON cases (department) WHERE stage IS NOT NULL;

CREATE TABLE case_timeline (
    id        bigserial PRIMARY KEY,
    case_id   bigint NOT NULL REFERENCES cases (id),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,                 -- account name, 'system', or a device
    role      text,
    scope     text,                          -- 'city' or the actor's district
    action    text NOT NULL,                 -- create, a lifecycle action, warning, overdue, escalate
    state     text NOT NULL,                 -- the case's state after it
    note      text NOT NULL DEFAULT '',
    fields    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_timeline_case ON case_timeline (case_id, id);

CREATE FUNCTION case_timeline_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the case timeline is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER case_timeline_no_update BEFORE UPDATE OR DELETE ON case_timeline
    FOR EACH ROW EXECUTE FUNCTION case_timeline_is_append_only();
CREATE TRIGGER case_timeline_no_truncate BEFORE TRUNCATE ON case_timeline
    FOR EACH STATEMENT EXECUTE FUNCTION case_timeline_is_append_only();
