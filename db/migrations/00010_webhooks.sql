-- +goose Up

-- Webhook endpoints: where an organisation's audit events are sent, signed
-- with the endpoint's secret (Standard Webhooks). The secret is kept sealed
-- with a key derived from KEYWARD_SECRET_KEY (AES-GCM, bound to the
-- endpoint's id), because every delivery needs it to sign; it is shown
-- once, when the endpoint is made. Deliveries are River jobs, enqueued in
-- the transaction that writes the event (web/webhook); this table holds no
-- queue.
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url text NOT NULL,
    actions text[] NOT NULL,
    secret_sealed bytea NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    -- Why the endpoint is disabled, in words; empty while enabled.
    disabled_reason text NOT NULL DEFAULT '',
    -- The first failed attempt since the last success: deliveries that
    -- have failed for 3 days disable the endpoint.
    failing_since timestamptz,
    last_success_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

-- One row per delivery attempt, written in a transaction of its own after
-- the attempt, so a failed one is kept whatever happens to its job.
CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    -- The delivery's webhook-id, the same on every retry.
    delivery_id text NOT NULL,
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    event_type text NOT NULL,
    attempted_at timestamptz NOT NULL,
    -- NULL when no answer came (refused address, timeout, TLS error).
    status_code integer,
    error text NOT NULL DEFAULT '',
    latency_ms integer NOT NULL,
    -- The first 1 KB of the answer's body.
    response_body text NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at DESC, id DESC);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_endpoints;
