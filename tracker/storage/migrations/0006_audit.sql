-- The audit trail: every state-changing action, with who, when, from where, what, and the
-- state before and after. Append-only: rows are never updated or deleted, which the
-- triggers below enforce for every role that is not the table's owner's superuser bypass
-- (TRUNCATE included). Retention does not touch it.
CREATE TABLE audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,             -- account name, 'cli:<os user>', or 'system'
    role     text,                      -- the actor's role when it acted, if an account
    scope    text,                      -- 'city' or the actor's district
    source   text NOT NULL DEFAULT '',  -- client address, 'cli', or the component acting
    action   text NOT NULL,             -- e.g. login, login_failed, plan.replace, device.add
    target   text NOT NULL DEFAULT '',  -- what it acted on: an account, device, plan version…
    outcome  text NOT NULL DEFAULT 'ok' CHECK (outcome IN ('ok', 'refused', 'failed')),
    before   jsonb,
    after    jsonb,
    detail   text NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at DESC);
CREATE INDEX audit_actor ON audit (actor, at DESC);
CREATE INDEX audit_target ON audit (target, at DESC);

CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
