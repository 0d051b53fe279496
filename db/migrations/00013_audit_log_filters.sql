-- +goose Up

-- The audit log page (/settings/developers/audit-log) pages through one
-- tenant's events newest first by sequence number, filtered by action,
-- actor or the key an event is about. These indexes keep each filter a
-- range scan in sequence order however long the trail grows; the key one
-- also serves a key page's audit history.
CREATE INDEX audit_events_action_idx ON audit_events (tenant_id, action, seq);
CREATE INDEX audit_events_actor_idx ON audit_events (tenant_id, actor_type, actor_id, seq);
CREATE INDEX audit_events_target_idx ON audit_events (tenant_id, target_type, target_id, seq);

-- +goose Down
DROP INDEX audit_events_target_idx;
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_action_idx;
