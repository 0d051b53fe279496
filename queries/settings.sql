-- Organisation settings and the developers overview.

-- name: GetKeyPolicy :one
SELECT * FROM key_policies WHERE tenant_id = $1;

-- name: UpsertKeyPolicy :exec
INSERT INTO key_policies (tenant_id, max_lifetime_days, require_prod_allowlist, idle_disable_days, default_expiry_days, leak_action, updated_at)
VALUES (@tenant_id, sqlc.narg(max_lifetime_days), @require_prod_allowlist, sqlc.narg(idle_disable_days), sqlc.narg(default_expiry_days), @leak_action, @updated_at)
ON CONFLICT (tenant_id) DO UPDATE SET
    max_lifetime_days = excluded.max_lifetime_days,
    require_prod_allowlist = excluded.require_prod_allowlist,
    idle_disable_days = excluded.idle_disable_days,
    default_expiry_days = excluded.default_expiry_days,
    leak_action = excluded.leak_action,
    updated_at = excluded.updated_at;

-- name: SetTenantName :exec
UPDATE tenants SET name = @name WHERE id = @id;

-- name: ListLiveAPIKeys :many
-- The tenant's keys that are neither revoked nor expired, newest first:
-- what policies and the developers overview look at.
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now::timestamptz)
ORDER BY created_at DESC, id
LIMIT 5000;

-- name: ListLeakedAPIKeys :many
-- The tenant's keys reported leaked since a time, whatever their status
-- (a leaked key is usually revoked at once), newest report first: the
-- developers overview's banner.
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id AND leaked_at >= @since::timestamptz
ORDER BY leaked_at DESC, id
LIMIT 100;

-- name: ListIdlePolicies :many
SELECT tenant_id, idle_disable_days::int AS idle_disable_days FROM key_policies WHERE idle_disable_days IS NOT NULL;

-- name: ListIdleAPIKeys :many
-- Active keys of a tenant not used since before (never-used keys count
-- from their creation).
SELECT id FROM api_keys
WHERE tenant_id = @tenant_id AND revoked_at IS NULL AND disabled_at IS NULL
  AND (expires_at IS NULL OR expires_at > @now::timestamptz)
  AND coalesce(last_used_at, created_at) < @before::timestamptz
ORDER BY id;

-- name: CountRequestsSince :one
-- Requests of the tenant's keys since a time, and how many were refused
-- (4xx and 5xx); a row stands for count requests.
SELECT coalesce(sum(count), 0)::bigint AS requests,
       coalesce(sum(count) FILTER (WHERE status >= 400), 0)::bigint AS refusals
FROM api_request_logs WHERE tenant_id = @tenant_id AND at >= @since;
