-- +goose Up

-- API keys. A key is its configuration; its secrets live in api_key_secrets,
-- one row per secret, so a rotation can keep the old secret working for a
-- grace window. The database never holds a full key: only its SHA-256 and
-- a non-secret display prefix.
CREATE TABLE api_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           bigint      NOT NULL REFERENCES tenants (id),
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description         text        NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    environment         text        NOT NULL CHECK (environment IN ('production', 'staging', 'development')),
    scopes              text[]      NOT NULL,
    -- Event sources the key may touch; empty means any.
    sources             text[]      NOT NULL DEFAULT '{}',
    -- CIDRs, validated and normalised in Go; empty means any address.
    ip_allowlist        text[]      NOT NULL DEFAULT '{}',
    -- NULL: the tenant plan's default applies.
    rate_limit_requests integer CHECK (rate_limit_requests > 0),
    rate_limit_window_s integer CHECK (rate_limit_window_s > 0),
    expires_at          timestamptz,
    disabled_at         timestamptz,
    revoked_at          timestamptz,
    created_by          bigint REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    last_used_ip        text NOT NULL DEFAULT ''
);
-- Names are unique among a tenant's live (unrevoked) keys.
CREATE UNIQUE INDEX api_keys_live_name_key ON api_keys (tenant_id, lower(name)) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

CREATE TABLE api_key_secrets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id     uuid        NOT NULL REFERENCES api_keys (id),
    tenant_id  bigint      NOT NULL REFERENCES tenants (id),
    hash       bytea       NOT NULL UNIQUE CHECK (length(hash) = 32),
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set when a rotation retires the secret: it works until then.
    expires_at timestamptz
);
CREATE INDEX api_key_secrets_key_idx ON api_key_secrets (key_id);

-- +goose Down
DROP TABLE api_key_secrets;
DROP TABLE api_keys;
