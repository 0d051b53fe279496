-- name: InitAuditChainHead :exec
-- A chain started now is keyed from its first event.
INSERT INTO audit_chain_heads (chain_id, seq, hash, keyed) VALUES ($1, 0, $2, true)
ON CONFLICT (chain_id) DO NOTHING;

-- name: LockAuditChainHead :one
SELECT * FROM audit_chain_heads WHERE chain_id = $1 FOR UPDATE;

-- name: UpdateAuditChainHead :exec
-- Every event appended is keyed, so the head is too from now on.
UPDATE audit_chain_heads SET seq = $2, hash = $3, keyed = true WHERE chain_id = $1;

-- name: InsertAuditEvent :one
INSERT INTO audit_events (chain_id, seq, tenant_id, occurred_at, actor_type, actor_id, action,
                          target_type, target_id, ip, user_agent, diff, prev_hash, hash, hash_alg)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING id;

-- name: ListAuditChainHeads :many
SELECT * FROM audit_chain_heads ORDER BY chain_id;

-- name: ListAuditChainIDs :many
-- Every chain that has events or a head: verification walks chains whose
-- head is missing too.
SELECT chain_id FROM audit_chain_heads
UNION
SELECT DISTINCT chain_id FROM audit_events
ORDER BY chain_id;

-- name: ListAuditEventsInChain :many
-- Used by `keyward audit verify`, a page at a time.
SELECT * FROM audit_events WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3;

-- name: GetAuditEvent :one
-- One event by its place in its chain, as a checkpoint names it.
SELECT * FROM audit_events WHERE chain_id = $1 AND seq = $2;

-- name: ListAuditChainsToCheckpoint :many
-- The chains whose last event is not a checkpoint: something happened in
-- them since their last one (or they never had one).
SELECT h.chain_id FROM audit_chain_heads h
WHERE h.seq > 0 AND NOT EXISTS (
    SELECT 1 FROM audit_events e
    WHERE e.chain_id = h.chain_id AND e.seq = h.seq AND e.action = 'audit.checkpoint')
ORDER BY h.chain_id;

-- name: ListUnkeyedAuditChains :many
-- The chains whose events were all written before the chain was keyed:
-- audit.SealChains appends their audit.chain_keyed marker.
SELECT chain_id FROM audit_chain_heads WHERE NOT keyed AND seq > 0 ORDER BY chain_id;

-- name: ListAuditLog :many
-- A tenant's events for the audit log page, newest first: those between
-- after_seq and before_seq (exclusive) that match the filters. action,
-- actor_type and key_id '' and actor_ids empty match anything; actor_ids
-- are the ids one actor filter names (a key's name can be several keys'
-- over time); key_id is the key an event is about (target_type api_key). occurred_at is in [from_at,
-- to_at). A tenant's events are its chain, so seq orders them.
-- ListAuditLogOldestFirst must filter the same way.
SELECT * FROM audit_events
WHERE chain_id = @tenant_id::bigint AND tenant_id = @tenant_id::bigint
  AND (@action::text = '' OR action = @action::text)
  AND (@actor_type::text = '' OR actor_type = @actor_type::text)
  AND (coalesce(cardinality(@actor_ids::text[]), 0) = 0 OR actor_id = ANY(@actor_ids::text[]))
  AND (@key_id::text = '' OR (target_type = 'api_key' AND target_id = @key_id::text))
  AND occurred_at >= @from_at::timestamptz AND occurred_at < @to_at::timestamptz
  AND seq > @after_seq::bigint AND seq < @before_seq::bigint
ORDER BY seq DESC
LIMIT @lim;

-- name: ListAuditLogOldestFirst :many
-- ListAuditLog oldest first: a "newer" page (shown newest first by the
-- caller), and the exports, a batch at a time.
SELECT * FROM audit_events
WHERE chain_id = @tenant_id::bigint AND tenant_id = @tenant_id::bigint
  AND (@action::text = '' OR action = @action::text)
  AND (@actor_type::text = '' OR actor_type = @actor_type::text)
  AND (coalesce(cardinality(@actor_ids::text[]), 0) = 0 OR actor_id = ANY(@actor_ids::text[]))
  AND (@key_id::text = '' OR (target_type = 'api_key' AND target_id = @key_id::text))
  AND occurred_at >= @from_at::timestamptz AND occurred_at < @to_at::timestamptz
  AND seq > @after_seq::bigint AND seq < @before_seq::bigint
ORDER BY seq
LIMIT @lim;

-- name: GetAuditChainLastSeq :one
-- Where a tenant's chain ends now: an export stops there, so events
-- appended while it runs are left for the next one.
SELECT coalesce(max(seq), 0)::bigint FROM audit_events WHERE chain_id = @tenant_id::bigint;
