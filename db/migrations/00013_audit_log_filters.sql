-- +goose NO TRANSACTION
-- +goose Up

-- The audit log page (/settings/developers/audit-log) pages through one
-- tenant's events newest first by sequence number, filtered by action,
-- actor or the key an event is about. These indexes keep each filter a
-- range scan in sequence order however long the trail grows; the key one
-- also serves a key page's audit history.
--
-- Built CONCURRENTLY, outside a transaction, so that a long trail being
-- indexed during an upgrade does not hold up the audited writes (a plain
-- CREATE INDEX blocks every insert into audit_events until it is done).
-- IF NOT EXISTS lets a run stopped halfway go on. A build that failed
-- leaves an index marked invalid, which IF NOT EXISTS would then keep:
-- should that happen, drop it (DROP INDEX CONCURRENTLY …) and start
-- Keyward again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_action_idx ON audit_events (tenant_id, action, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_actor_idx ON audit_events (tenant_id, actor_type, actor_id, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_target_idx ON audit_events (tenant_id, target_type, target_id, seq);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS audit_events_target_idx;
DROP INDEX CONCURRENTLY IF EXISTS audit_events_actor_idx;
DROP INDEX CONCURRENTLY IF EXISTS audit_events_action_idx;
