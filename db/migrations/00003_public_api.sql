-- +goose Up

-- Events: what API consumers ingest. Every row belongs to one (tenant,
-- environment) partition, and every query names both, so a staging key
-- never reads production data. The id is a UUIDv7 made by the server: it
-- sorts by time and is the pagination cursor.
-- No foreign keys: every insert would share-lock its key's and tenant's
-- rows, so concurrent ingestion with one key would contend on them, and
-- keys and tenants are never deleted (a key is revoked, its data kept).
CREATE TABLE events (
    id          uuid        PRIMARY KEY,
    tenant_id   bigint      NOT NULL,
    environment text        NOT NULL CHECK (environment IN ('production', 'staging', 'development')),
    source      text        NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    type        text        NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    data        jsonb       NOT NULL,
    key_id      uuid        NOT NULL
);
CREATE INDEX events_partition_idx ON events (tenant_id, environment, id DESC);

-- Idempotency keys of ingestion requests, with the response they produced,
-- kept 24 hours. They belong to one API key (whose id survives rotation, so
-- a retry after a rotation still replays): another key never sees them.
-- No foreign keys, for the reason events has none.
CREATE TABLE idempotency_keys (
    key_id       uuid        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    tenant_id    bigint      NOT NULL,
    request_hash bytea       NOT NULL CHECK (length(request_hash) = 32),
    status       integer     NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (key_id, key)
);
-- BRIN: the expiry job needs only a rough order, and every claim pays for
-- a btree entry.
CREATE INDEX idempotency_keys_created_brin ON idempotency_keys USING brin (created_at);

-- One row per keyed public-API request, written in batches with COPY.
-- Requests whose key could not be identified are not logged here: they
-- belong to no tenant. An append-only log: no primary key or foreign keys
-- to check on every row, and a BRIN index for the retention delete.
CREATE TABLE api_request_logs (
    tenant_id  bigint      NOT NULL,
    key_id     uuid        NOT NULL,
    -- The display prefix of the secret presented: which one of a key's
    -- secrets (during a rotation's grace) made the request.
    key_prefix text        NOT NULL,
    method     text        NOT NULL,
    path       text        NOT NULL,
    status     integer     NOT NULL,
    ip         text        NOT NULL,
    latency_us bigint      NOT NULL,
    request_id text        NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX api_request_logs_tenant_idx ON api_request_logs (tenant_id, at DESC);
CREATE INDEX api_request_logs_key_idx ON api_request_logs (key_id, at DESC);
CREATE INDEX api_request_logs_at_brin ON api_request_logs USING brin (at);

-- The addresses each key has been used from, so the first use from a new
-- one is audited once (api_key.used_from_new_ip). Bounded per key in Go.
CREATE TABLE api_key_ips (
    key_id        uuid        NOT NULL REFERENCES api_keys (id),
    tenant_id     bigint      NOT NULL REFERENCES tenants (id),
    ip            text        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, ip)
);

-- +goose Down
DROP TABLE api_key_ips;
DROP TABLE api_request_logs;
DROP TABLE idempotency_keys;
DROP TABLE events;
