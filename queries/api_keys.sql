-- Every query is scoped by tenant_id: another tenant's key id finds nothing.

-- name: CreateAPIKey :one
INSERT INTO api_keys (tenant_id, name, description, environment, scopes, sources, ip_allowlist,
                      rate_limit_requests, rate_limit_window_s, expires_at, created_by)
VALUES (@tenant_id, @name, @description, @environment, @scopes, @sources, @ip_allowlist,
        sqlc.narg(rate_limit_requests), sqlc.narg(rate_limit_window_s), sqlc.narg(expires_at), @created_by)
RETURNING *;

-- name: GetAPIKey :one
SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id;

-- name: GetAPIKeyForUpdate :one
SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: ListAPIKeysByTenant :many
-- status: '' (any), active, disabled, expired, revoked.
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id
  AND (@environment::text = '' OR environment = @environment)
  AND (@status::text = ''
       OR (@status = 'revoked' AND revoked_at IS NOT NULL)
       OR (@status = 'disabled' AND revoked_at IS NULL AND disabled_at IS NOT NULL)
       OR (@status = 'expired' AND revoked_at IS NULL AND disabled_at IS NULL AND expires_at <= @now::timestamptz)
       OR (@status = 'active' AND revoked_at IS NULL AND disabled_at IS NULL AND (expires_at IS NULL OR expires_at > @now::timestamptz)))
ORDER BY created_at DESC, id
LIMIT @lim OFFSET @off;

-- name: UpdateAPIKey :exec
UPDATE api_keys SET name = @name, description = @description, scopes = @scopes, sources = @sources,
    ip_allowlist = @ip_allowlist, rate_limit_requests = sqlc.narg(rate_limit_requests),
    rate_limit_window_s = sqlc.narg(rate_limit_window_s), expires_at = sqlc.narg(expires_at)
WHERE tenant_id = @tenant_id AND id = @id;

-- name: SetAPIKeyDisabled :exec
UPDATE api_keys SET disabled_at = sqlc.narg(disabled_at) WHERE tenant_id = @tenant_id AND id = @id AND revoked_at IS NULL;

-- name: RevokeAPIKey :exec
UPDATE api_keys SET revoked_at = @now WHERE tenant_id = @tenant_id AND id = @id AND revoked_at IS NULL;

-- name: CreateAPIKeySecret :exec
INSERT INTO api_key_secrets (key_id, tenant_id, hash, prefix) VALUES (@key_id, @tenant_id, @hash, @prefix);

-- name: ListAPIKeySecrets :many
SELECT id, key_id, tenant_id, prefix, created_at, expires_at FROM api_key_secrets
WHERE tenant_id = @tenant_id AND key_id = @key_id ORDER BY created_at DESC, id DESC;

-- name: ListSecretPrefixes :many
-- The newest secret's prefix per key, for the list page: the current one,
-- or for a revoked key the last one it had.
SELECT DISTINCT ON (key_id) key_id, prefix FROM api_key_secrets
WHERE tenant_id = @tenant_id
ORDER BY key_id, created_at DESC, id DESC;

-- name: ExpireAPIKeySecrets :exec
-- Retires every live secret of a key at @at (a rotation's grace end).
UPDATE api_key_secrets SET expires_at = @at
WHERE tenant_id = @tenant_id AND key_id = @key_id AND (expires_at IS NULL OR expires_at > @at);

-- name: ListAuditEventsForTarget :many
SELECT * FROM audit_events WHERE tenant_id = @tenant_id AND target_type = @target_type AND target_id = @target_id
ORDER BY seq DESC LIMIT 100;

-- name: ListLiveSecretsByTenant :many
-- Every live secret's prefix of the tenant, newest first, for the console's
-- key list in one query.
SELECT key_id, prefix FROM api_key_secrets
WHERE tenant_id = @tenant_id AND (expires_at IS NULL OR expires_at > @now)
ORDER BY key_id, created_at DESC, id DESC;

-- name: MarkAPIKeyChanged :exec
-- Every key operation, last in its transaction: the verifier's catch-up
-- after a lost listener reads changed_at.
UPDATE api_keys SET changed_at = clock_timestamp() WHERE tenant_id = @tenant_id AND id = @id;
