-- Leaked keys: what an organisation does with a key reported leaked (by a
-- secret-scanning partner or a public report), and the report itself,
-- kept on the key for its page and the developers overview. The audit
-- event api_key.leaked holds the same facts; the columns save pages from
-- searching the trail for them.
-- +goose Up
ALTER TABLE key_policies ADD COLUMN leak_action text NOT NULL DEFAULT 'revoke'
    CHECK (leak_action IN ('revoke', 'disable'));

-- The latest report of the key as leaked: when, where it was found (a URL
-- as the reporter gave it, cleaned and bounded) and who found it.
ALTER TABLE api_keys ADD COLUMN leaked_at timestamptz;
ALTER TABLE api_keys ADD COLUMN leaked_url text NOT NULL DEFAULT '' CHECK (length(leaked_url) <= 2000);
ALTER TABLE api_keys ADD COLUMN leaked_source text NOT NULL DEFAULT '' CHECK (length(leaked_source) <= 200);
CREATE INDEX api_keys_leaked_idx ON api_keys (tenant_id, leaked_at DESC) WHERE leaked_at IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_leaked_idx;
ALTER TABLE api_keys DROP COLUMN leaked_source;
ALTER TABLE api_keys DROP COLUMN leaked_url;
ALTER TABLE api_keys DROP COLUMN leaked_at;
ALTER TABLE key_policies DROP COLUMN leak_action;
