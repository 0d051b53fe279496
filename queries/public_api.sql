-- Queries of the public API's hot and batch paths.

-- name: GetKeyForVerify :one
-- The one lookup by secret hash: the tenant is not known until the key is.
SELECT sqlc.embed(k), s.expires_at AS secret_expires_at, s.prefix, t.slug AS tenant_slug, t.plan AS tenant_plan
FROM api_key_secrets s
JOIN api_keys k ON k.id = s.key_id AND k.tenant_id = s.tenant_id
JOIN tenants t ON t.id = k.tenant_id
WHERE s.hash = @hash;

-- name: NotifyAPIKeyChanged :exec
-- Sent inside the transaction of every key change: delivered on commit.
SELECT pg_notify('keyward_api_keys', @key_id::text);

-- name: FlushLastUsed :execrows
-- At most one write per key per flush; never moves last_used_at backwards.
UPDATE api_keys k SET last_used_at = u.at, last_used_ip = u.ip
FROM (SELECT unnest(@tenant_ids::bigint[]) AS tenant_id, unnest(@key_ids::uuid[]) AS key_id,
             unnest(@ats::timestamptz[]) AS at, unnest(@ips::text[]) AS ip) AS u
WHERE k.tenant_id = u.tenant_id AND k.id = u.key_id AND (k.last_used_at IS NULL OR k.last_used_at < u.at);

-- name: CountKeyIPs :one
SELECT count(*) FROM api_key_ips WHERE tenant_id = @tenant_id AND key_id = @key_id;

-- name: InsertKeyIP :execrows
INSERT INTO api_key_ips (key_id, tenant_id, ip, first_seen_at) VALUES (@key_id, @tenant_id, @ip, @first_seen_at)
ON CONFLICT DO NOTHING;

-- name: CopyRequestLogs :copyfrom
INSERT INTO api_request_logs (tenant_id, key_id, method, path, status, ip, latency_us, request_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: DeleteOldRequestLogs :execrows
DELETE FROM api_request_logs WHERE at < @before;

-- name: ListRequestLogs :many
SELECT * FROM api_request_logs WHERE tenant_id = @tenant_id AND (@key_id::text = '' OR key_id::text = @key_id)
ORDER BY at DESC, id DESC LIMIT @lim;

-- name: LockIdempotencyKey :one
-- Held until the transaction ends: a second request with the same key
-- meanwhile is "in flight" (409).
SELECT pg_try_advisory_xact_lock(hashtextextended(@tenant_id::text || '/' || @environment::text || '/' || @key::text, 7301));

-- name: GetIdempotencyKey :one
SELECT * FROM idempotency_keys
WHERE tenant_id = @tenant_id AND environment = @environment AND key = @key AND created_at > @since;

-- name: SaveIdempotencyKey :exec
-- Replaces an expired row of the same key, if the expiry job has not yet.
INSERT INTO idempotency_keys (tenant_id, environment, key, request_hash, status, body, created_at)
VALUES (@tenant_id, @environment, @key, @request_hash, @status, @body, @created_at)
ON CONFLICT (tenant_id, environment, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, body = EXCLUDED.body, created_at = EXCLUDED.created_at;

-- name: DeleteExpiredIdempotencyKeys :execrows
DELETE FROM idempotency_keys WHERE created_at < @before;

-- name: InsertEvent :exec
INSERT INTO events (id, tenant_id, environment, source, type, occurred_at, received_at, data, key_id)
VALUES (@id, @tenant_id, @environment, @source, @type, @occurred_at, @received_at, @data, @key_id);

-- name: CopyEvents :copyfrom
INSERT INTO events (id, tenant_id, environment, source, type, occurred_at, received_at, data, key_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: GetEvent :one
SELECT * FROM events WHERE tenant_id = @tenant_id AND environment = @environment AND id = @id;

-- name: ListEvents :many
-- Newest first; after is the last id of the previous page ('' for the first).
-- sources, when not empty, restricts to those sources (a source-bound key).
SELECT * FROM events
WHERE tenant_id = @tenant_id AND environment = @environment
  AND (@after::text = '' OR id < @after::uuid)
  AND (@source::text = '' OR source = @source)
  AND (@type::text = '' OR type = @type)
  AND (cardinality(@sources::text[]) = 0 OR source = ANY(@sources::text[]))
ORDER BY id DESC
LIMIT @lim;
