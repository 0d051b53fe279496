-- name: CreateWebhookEndpoint :one
INSERT INTO webhook_endpoints (id, tenant_id, url, actions, secret_sealed, created_at, updated_at)
VALUES (@id, @tenant_id, @url, @actions, @secret_sealed, @now, @now)
RETURNING *;

-- name: ListWebhookEndpoints :many
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id ORDER BY created_at, id;

-- name: GetWebhookEndpoint :one
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id AND id = @id;

-- name: GetWebhookEndpointForUpdate :one
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: GetWebhookEndpointForDelivery :one
-- The endpoint a delivery job names, in the tenant whose event the job
-- was enqueued for.
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id AND id = @id;

-- name: LockWebhookEndpointForDelivery :one
-- As GetWebhookEndpointForDelivery, holding the row while an attempt is
-- recorded: a delete waits, and two attempts do not disable it twice.
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: ListSubscribedWebhookEndpoints :many
-- The enabled endpoints of a tenant that subscribe to action: one delivery
-- each is enqueued with the event.
SELECT id FROM webhook_endpoints
WHERE tenant_id = @tenant_id AND enabled AND @action::text = ANY(actions)
ORDER BY id;

-- name: UpdateWebhookEndpoint :one
UPDATE webhook_endpoints
SET url = @url, actions = @actions, enabled = @enabled, disabled_reason = @disabled_reason,
    -- Turned on again, or pointed elsewhere: its failure clock starts afresh.
    failing_since = CASE WHEN (@enabled AND NOT enabled) OR url <> @url THEN NULL ELSE failing_since END,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DeleteWebhookEndpoint :execrows
DELETE FROM webhook_endpoints WHERE tenant_id = @tenant_id AND id = @id;

-- name: MarkWebhookSuccess :exec
UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = @now::timestamptz WHERE tenant_id = @tenant_id AND id = @id;

-- name: MarkWebhookFailure :one
-- Returns since when the endpoint has failed without a success. A failure
-- whose attempt started before a success recorded meanwhile starts the
-- clock at that success, not before it.
UPDATE webhook_endpoints
SET failing_since = COALESCE(failing_since, GREATEST(@now::timestamptz, last_success_at))
WHERE tenant_id = @tenant_id AND id = @id
RETURNING failing_since;

-- name: DisableFailingWebhook :one
UPDATE webhook_endpoints SET enabled = false, disabled_reason = @disabled_reason, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND enabled
RETURNING *;

-- name: InsertWebhookAttempt :exec
INSERT INTO webhook_attempts (tenant_id, endpoint_id, delivery_id, job_id, attempt, event_type, attempted_at,
    status_code, error, latency_ms, response_body)
VALUES (@tenant_id, @endpoint_id, @delivery_id, @job_id, @attempt, @event_type, @attempted_at,
    sqlc.narg(status_code), @error, @latency_ms, @response_body);

-- name: ListWebhookAttempts :many
-- The newest attempts of one endpoint.
SELECT * FROM webhook_attempts WHERE tenant_id = @tenant_id AND endpoint_id = @endpoint_id
ORDER BY attempted_at DESC, id DESC LIMIT @max;

-- name: ListLatestWebhookAttempts :many
-- The newest attempt of each of the tenant's endpoints, one index probe
-- each.
SELECT a.* FROM webhook_endpoints e
CROSS JOIN LATERAL (
    SELECT * FROM webhook_attempts w WHERE w.endpoint_id = e.id
    ORDER BY w.attempted_at DESC, w.id DESC LIMIT 1
) a
WHERE e.tenant_id = @tenant_id;

-- name: DeleteOldWebhookAttempts :execrows
-- Attempts past their keeping, in every tenant (the cleanup job).
DELETE FROM webhook_attempts WHERE attempted_at < @before;
