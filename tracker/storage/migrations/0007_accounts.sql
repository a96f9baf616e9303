-- People and access: accounts with a role and a scope (the city, or one district),
-- browser sessions and API tokens. Secrets are never stored: a password as its Argon2
-- hash, a session cookie and an API token as the SHA-256 of their random 32 bytes (enough
-- for a secret nobody chose; Argon2 exists to slow the guessing of chosen passwords).
CREATE TABLE accounts (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role          text NOT NULL CHECK (role IN ('admin', 'commander', 'supervisor', 'viewer', 'collector')),
    district      text CHECK (district ~ '^[0-9]{6}$'),  -- NULL: the whole city
    device        text,                                  -- a collector's handset
    password_hash text NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    password_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (role = 'collector' OR device IS NULL)
);

CREATE TABLE sessions (
    id          bigserial PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    csrf        text NOT NULL,
    source      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE ended_at IS NULL;

CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);
