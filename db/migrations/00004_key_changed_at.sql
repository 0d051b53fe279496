-- +goose Up
-- changed_at is when a key last changed in a way the verifier's cache must
-- hear of: every key operation sets it (clock_timestamp(), as late in the
-- transaction as the operation allows). An instance whose notification
-- listener was cut off reads the keys changed since it last knew it was
-- current, less a margin for transactions still open then, and drops
-- exactly those from its cache before trusting it again.
ALTER TABLE api_keys ADD COLUMN changed_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX api_keys_changed_at_idx ON api_keys (changed_at);

-- +goose Down
DROP INDEX api_keys_changed_at_idx;
ALTER TABLE api_keys DROP COLUMN changed_at;
