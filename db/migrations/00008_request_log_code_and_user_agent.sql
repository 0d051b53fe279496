-- +goose Up

-- The request log keeps what a person reading it needs besides the status:
--   code       the envelope's error code of a refused or failed request
--              (IP_NOT_ALLOWED, KEY_REVOKED, ...), NULL when the answer
--              carried none;
--   user_agent the client's User-Agent, cleaned of invalid UTF-8 and NUL
--              and cut to 512 bytes like the path; NULL on rows written
--              before this migration.
-- Added on the partitioned parent, so every partition gets them, the
-- default one included, and request_log_partition_create's LIKE copies
-- them into partitions made later, in the same column order as the
-- default partition it moves rows out of. Nullable without a default, so
-- adding them rewrites no partition.
ALTER TABLE api_request_logs ADD COLUMN code text, ADD COLUMN user_agent text;

-- +goose Down
ALTER TABLE api_request_logs DROP COLUMN user_agent, DROP COLUMN code;
