-- +goose Up

-- Invitations to join a tenant. The link's token is shown once, to the
-- owner who made it (and mailed when SMTP is configured); only its SHA-256
-- is kept, so a database dump holds no usable link. An invitation is
-- pending until it is accepted, revoked or past expires_at.
CREATE TABLE invitations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint      NOT NULL REFERENCES tenants (id),
    email       text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_by  bigint      NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by bigint REFERENCES users (id),
    revoked_at  timestamptz
);
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, created_at DESC);

-- When each user last completed sign-in (both factors), for the team page.
ALTER TABLE users ADD COLUMN last_sign_in_at timestamptz;

-- Where a session was opened from, for the account page's session list.
ALTER TABLE sessions ADD COLUMN ip text NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN user_agent text NOT NULL DEFAULT '';

-- A tenant's key policies; no row means no policy. NULL days mean the
-- policy is off.
CREATE TABLE key_policies (
    tenant_id              bigint PRIMARY KEY REFERENCES tenants (id),
    -- Every new or edited key must expire within this many days.
    max_lifetime_days      integer CHECK (max_lifetime_days BETWEEN 1 AND 3650),
    -- Production keys must have an IP allowlist.
    require_prod_allowlist boolean     NOT NULL DEFAULT false,
    -- Keys unused for this many days are disabled by a periodic job.
    idle_disable_days      integer CHECK (idle_disable_days BETWEEN 1 AND 3650),
    -- The expiry the create form offers, in days from today.
    default_expiry_days    integer CHECK (default_expiry_days BETWEEN 1 AND 3650),
    updated_at             timestamptz NOT NULL
);

-- +goose Down
DROP TABLE key_policies;
ALTER TABLE sessions DROP COLUMN user_agent;
ALTER TABLE sessions DROP COLUMN ip;
ALTER TABLE users DROP COLUMN last_sign_in_at;
DROP TABLE invitations;
