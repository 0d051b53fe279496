-- Every query is scoped by tenant_id: another tenant's key id finds nothing.

-- name: CreateAPIKey :one
INSERT INTO api_keys (tenant_id, name, description, environment, scopes, sources, ip_allowlist,
                      rate_limit_requests, rate_limit_window_s, expires_at, created_by, expiry_stage)
VALUES (@tenant_id, @name, @description, @environment, @scopes, @sources, @ip_allowlist,
        sqlc.narg(rate_limit_requests), sqlc.narg(rate_limit_window_s), sqlc.narg(expires_at), @created_by, @expiry_stage)
RETURNING *;

-- name: GetAPIKey :one
SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id;

-- name: GetAPIKeyForUpdate :one
SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: ListAPIKeysByTenant :many
-- status: '' (any), active, disabled, expired, revoked. search: '' (any),
-- or text that the key's name or one of its secrets' display prefixes
-- contains, case ignored. sort: '' (newest first), created_asc,
-- last_used_desc, last_used_asc, expires_asc, expires_desc; a key never
-- used counts as used longest ago, a key that never expires as expiring
-- last; ties go newest first. CountAPIKeysByTenant must filter the same
-- way.
SELECT k.* FROM api_keys k
WHERE k.tenant_id = @tenant_id
  AND (@environment::text = '' OR k.environment = @environment)
  AND (@status::text = ''
       OR (@status = 'revoked' AND k.revoked_at IS NOT NULL)
       OR (@status = 'disabled' AND k.revoked_at IS NULL AND k.disabled_at IS NOT NULL)
       OR (@status = 'expired' AND k.revoked_at IS NULL AND k.disabled_at IS NULL AND k.expires_at <= @now::timestamptz)
       OR (@status = 'active' AND k.revoked_at IS NULL AND k.disabled_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > @now::timestamptz)))
  AND (@search::text = ''
       OR strpos(lower(k.name), lower(@search::text)) > 0
       OR EXISTS (SELECT 1 FROM api_key_secrets s
                  WHERE s.tenant_id = k.tenant_id AND s.key_id = k.id AND strpos(lower(s.prefix), lower(@search::text)) > 0))
ORDER BY
  CASE WHEN @sort::text = 'created_asc' THEN k.created_at END ASC,
  CASE WHEN @sort::text = 'last_used_desc' THEN k.last_used_at END DESC NULLS LAST,
  CASE WHEN @sort::text = 'last_used_asc' THEN k.last_used_at END ASC NULLS FIRST,
  CASE WHEN @sort::text = 'expires_asc' THEN k.expires_at END ASC NULLS LAST,
  CASE WHEN @sort::text = 'expires_desc' THEN k.expires_at END DESC NULLS FIRST,
  k.created_at DESC, k.id
LIMIT @lim OFFSET @off;

-- name: ListAPIKeyNames :many
-- The names of the tenant's keys among @ids, revoked ones too: the audit
-- log names the keys its page mentions, however old.
SELECT id, name FROM api_keys WHERE tenant_id = @tenant_id AND id = ANY(@ids::uuid[]);

-- name: ListAPIKeyIDsByName :many
-- Every key of the tenant ever called @name (case ignored, as names are
-- unique among live keys): a revoked key may share a live key's name.
SELECT id FROM api_keys WHERE tenant_id = @tenant_id AND lower(name) = lower(@name::text) ORDER BY created_at, id;

-- name: CountAPIKeysByTenant :one
-- How many of the tenant's keys ListAPIKeysByTenant's filter matches, and
-- how many keys the tenant has at all.
SELECT count(*) FILTER (WHERE
         (@environment::text = '' OR k.environment = @environment)
         AND (@status::text = ''
              OR (@status = 'revoked' AND k.revoked_at IS NOT NULL)
              OR (@status = 'disabled' AND k.revoked_at IS NULL AND k.disabled_at IS NOT NULL)
              OR (@status = 'expired' AND k.revoked_at IS NULL AND k.disabled_at IS NULL AND k.expires_at <= @now::timestamptz)
              OR (@status = 'active' AND k.revoked_at IS NULL AND k.disabled_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > @now::timestamptz)))
         AND (@search::text = ''
              OR strpos(lower(k.name), lower(@search::text)) > 0
              OR EXISTS (SELECT 1 FROM api_key_secrets s
                         WHERE s.tenant_id = k.tenant_id AND s.key_id = k.id AND strpos(lower(s.prefix), lower(@search::text)) > 0))
       ) AS matching,
       count(*) AS total
FROM api_keys k
WHERE k.tenant_id = @tenant_id;

-- name: UpdateAPIKey :exec
-- A changed expiry sets expiry_stage again (to @expiry_stage, the stages
-- of the new expiry whose time has come), so the key's notices and its
-- expiry are recorded anew; an unchanged one keeps it.
UPDATE api_keys SET name = @name, description = @description, scopes = @scopes, sources = @sources,
    ip_allowlist = @ip_allowlist, rate_limit_requests = sqlc.narg(rate_limit_requests),
    rate_limit_window_s = sqlc.narg(rate_limit_window_s), expires_at = sqlc.narg(expires_at),
    expiry_stage = CASE WHEN expires_at IS DISTINCT FROM sqlc.narg(expires_at) THEN @expiry_stage::smallint ELSE expiry_stage END
WHERE tenant_id = @tenant_id AND id = @id;

-- name: SetAPIKeyDisabled :exec
UPDATE api_keys SET disabled_at = sqlc.narg(disabled_at) WHERE tenant_id = @tenant_id AND id = @id AND revoked_at IS NULL;

-- name: RevokeAPIKey :exec
UPDATE api_keys SET revoked_at = @now WHERE tenant_id = @tenant_id AND id = @id AND revoked_at IS NULL;

-- name: CreateAPIKeySecret :exec
INSERT INTO api_key_secrets (key_id, tenant_id, hash, prefix) VALUES (@key_id, @tenant_id, @hash, @prefix);

-- name: ListAPIKeySecrets :many
SELECT id, key_id, tenant_id, prefix, created_at, expires_at, last_request_at FROM api_key_secrets
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

-- name: EndAPIKeySecretGrace :execrows
-- Ends now the rotation grace of a key's secret: only one whose grace is
-- still running (a current secret has no expiry; a retired one's is past).
UPDATE api_key_secrets SET expires_at = @now
WHERE tenant_id = @tenant_id AND key_id = @key_id AND prefix = @prefix AND expires_at > @now;

-- name: ListAuditEventsForTarget :many
SELECT * FROM audit_events WHERE tenant_id = @tenant_id AND target_type = @target_type AND target_id = @target_id
ORDER BY seq DESC LIMIT 100;

-- name: GetLatestAuditEventForTarget :one
-- The newest event of one action about one target, such as the
-- revocation of a key, for its page.
SELECT * FROM audit_events
WHERE tenant_id = @tenant_id AND target_type = @target_type AND target_id = @target_id AND action = @action
ORDER BY seq DESC
LIMIT 1;

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

-- name: MarkAPIKeyLeaked :exec
-- Records the latest report of the key as leaked, for its page and the
-- developers overview (the audit event api_key.leaked says the same):
-- when, where, by whom, and which secret (its display prefix).
UPDATE api_keys SET leaked_at = @leaked_at, leaked_url = @leaked_url, leaked_source = @leaked_source,
    leaked_prefix = @leaked_prefix
WHERE tenant_id = @tenant_id AND id = @id;

-- name: ListAPIKeysExpiryDue :many
-- Live keys of every tenant (the expiry job spans them on purpose, as the
-- retention jobs do) with an expiry stage due at @now and not yet
-- recorded, soonest expiry first, after the cursor (@after_expires,
-- @after_id). due is the stage the key has reached: 3 expired (at or
-- before @now), 2 within a day (@day_ahead), 1 within 14 days
-- (@fortnight_ahead). Disabled keys are listed only once expired: they
-- get no notices.
SELECT tenant_id, id, expires_at::timestamptz AS expires_at, expiry_stage,
       (CASE WHEN expires_at <= @now::timestamptz THEN 3 WHEN expires_at <= @day_ahead::timestamptz THEN 2 ELSE 1 END)::smallint AS due
FROM api_keys
WHERE expires_at IS NOT NULL AND revoked_at IS NULL AND expiry_stage < 3
  AND expires_at <= @fortnight_ahead::timestamptz
  AND expiry_stage < CASE WHEN expires_at <= @now::timestamptz THEN 3 WHEN expires_at <= @day_ahead::timestamptz THEN 2 ELSE 1 END
  AND (disabled_at IS NULL OR expires_at <= @now::timestamptz)
  AND (expires_at, id) > (@after_expires::timestamptz, @after_id::uuid)
ORDER BY expires_at, id
LIMIT @lim;

-- name: ClaimAPIKeyExpiryStage :execrows
-- Moves a key to expiry stage @stage, if it still falls short of it, is
-- still live (and, but for stage 3, enabled) and still expires at
-- @expires_at. 0 rows: another run claimed it first, or the key changed.
-- The caller writes the stage's audit event in the same transaction: the
-- row lock makes concurrent claims wait, and they then see the new stage.
UPDATE api_keys SET expiry_stage = @stage::smallint
WHERE tenant_id = @tenant_id AND id = @id AND expires_at = @expires_at::timestamptz AND expiry_stage < @stage::smallint
  AND revoked_at IS NULL AND (disabled_at IS NULL OR @stage::smallint = 3);
