-- +goose Up

-- Tenants own everything; nothing crosses from one tenant to another.
CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan       text        NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'solo', 'team', 'stack')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Portal users. The email is unique across tenants because sign-in asks for
-- nothing but email and password.
CREATE TABLE users (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id            bigint      NOT NULL REFERENCES tenants (id),
    email                text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role                 text        NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    password_hash        text        NOT NULL,
    must_change_password boolean     NOT NULL DEFAULT false,
    -- AES-GCM ciphertext of the TOTP secret; NULL until enrolment is confirmed.
    totp_secret_enc      bytea,
    totp_enrolled_at     timestamptz,
    -- The last RFC 6238 time step accepted for this user: a code from this step
    -- or an earlier one is a replay.
    totp_last_step       bigint      NOT NULL DEFAULT 0,
    disabled_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_tenant_idx ON users (tenant_id);

-- Single-use recovery codes, stored as HMAC-SHA256 under a key derived from
-- KEYWARD_SECRET_KEY, so a database dump alone cannot be brute-forced.
CREATE TABLE recovery_codes (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea       NOT NULL,
    used_at   timestamptz,
    UNIQUE (user_id, code_hash)
);

-- Server-side portal sessions. The cookie carries only a random id; the row is
-- keyed by its SHA-256 so a database dump does not hand out live sessions.
CREATE TABLE sessions (
    id_hash      bytea PRIMARY KEY,
    user_id      bigint REFERENCES users (id) ON DELETE CASCADE,
    data         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Failure counters for sign-in and TOTP throttling. A key names what is
-- throttled: "login:email:<email>", "login:ip:<ip>", "mfa:user:<id>".
CREATE TABLE auth_throttle (
    key          text PRIMARY KEY,
    failures     integer     NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);

-- The audit trail: append-only and hash-chained per tenant. chain_id is the
-- tenant id, or 0 for events that belong to no tenant (such as a failed
-- sign-in for an unknown email).
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id    bigint      NOT NULL,
    seq         bigint      NOT NULL,
    tenant_id   bigint REFERENCES tenants (id),
    occurred_at timestamptz NOT NULL,
    actor_type  text        NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id    text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    target_type text        NOT NULL DEFAULT '',
    target_id   text        NOT NULL DEFAULT '',
    ip          text        NOT NULL DEFAULT '',
    user_agent  text        NOT NULL DEFAULT '',
    -- json, not jsonb: the hash covers these exact bytes.
    diff        json        NOT NULL,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, occurred_at DESC);

-- The head of each chain, locked FOR UPDATE while an event is appended so two
-- writers cannot fork a chain.
CREATE TABLE audit_chain_heads (
    chain_id bigint PRIMARY KEY,
    seq      bigint NOT NULL,
    hash     bytea  NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_chain_heads;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_no_update ON audit_events;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE auth_throttle;
DROP TABLE sessions;
DROP TABLE recovery_codes;
DROP TABLE users;
DROP TABLE tenants;
