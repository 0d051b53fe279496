-- +goose Up

-- When a request last presented each secret, accepted or refused. The
-- usage buffer writes it, at most once a minute per secret, so that during
-- a rotation's grace an admin can see whether clients still send the old
-- secret (and, after it, whether they are being refused with it). Reading
-- it from the request log instead would scan a busy key's whole log to
-- find an idle secret's last row.
ALTER TABLE api_key_secrets ADD COLUMN last_request_at timestamptz;

-- +goose Down
ALTER TABLE api_key_secrets DROP COLUMN last_request_at;
