-- The display prefix of the secret a key's latest leak report named. The
-- key's page tells from it whether the reported secret still works (a key
-- disabled for a leak and enabled again works with the very secret that
-- leaked), and a repeat report of the same secret soon after is known as
-- one already handled. Keys reported before this column existed take the
-- prefix from their latest api_key.leaked event.
-- +goose Up
ALTER TABLE api_keys ADD COLUMN leaked_prefix text NOT NULL DEFAULT '' CHECK (length(leaked_prefix) <= 64);
UPDATE api_keys k SET leaked_prefix = coalesce((
    SELECT e.diff ->> 'prefix' FROM audit_events e
    WHERE e.tenant_id = k.tenant_id AND e.action = 'api_key.leaked' AND e.target_id = k.id::text
    ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1), '')
WHERE k.leaked_at IS NOT NULL;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN leaked_prefix;
