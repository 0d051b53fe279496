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
INSERT INTO api_request_logs (tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at, count, code, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: FlushSecretLastRequest :execrows
-- When a request last presented each secret, for the key page during a
-- rotation's grace: one write per secret per flush; never moves backwards.
-- A secret is named by its key and display prefix, as the request log
-- names it.
UPDATE api_key_secrets s SET last_request_at = u.at
FROM (SELECT unnest(@tenant_ids::bigint[]) AS tenant_id, unnest(@key_ids::uuid[]) AS key_id,
             unnest(@prefixes::text[]) AS prefix, unnest(@ats::timestamptz[]) AS at) AS u
WHERE s.tenant_id = u.tenant_id AND s.key_id = u.key_id AND s.prefix = u.prefix
  AND (s.last_request_at IS NULL OR s.last_request_at < u.at);

-- name: EnsureRequestLogPartitions :one
-- Creates the request log's partitions of every UTC day from from_day
-- through to_day, and of every day its default partition holds rows of;
-- returns how many it created. Spans every tenant: a retention job.
SELECT request_log_partitions_ensure(@from_day::timestamptz, @to_day::timestamptz)::int AS created;

-- name: DropRequestLogPartitions :one
-- Drops the request log's day partitions whose rows are all older than
-- older_than, and the default partition's older rows; returns how many
-- partitions it dropped. Spans every tenant: a retention job.
SELECT request_log_partitions_drop(@older_than::timestamptz)::int AS dropped;

-- name: DeleteExpiredIdempotencyKeys :execrows
DELETE FROM idempotency_keys WHERE created_at < @before;

-- name: IngestEvents :one
-- One statement, one round trip: take the idempotency key's lock (held to
-- the end of the statement's transaction; a second request meanwhile sees
-- locked = false: in flight), read a live stored answer, or else claim the
-- key with the new answer and insert the events. All in one snapshot: if
-- a request that finished just before the lock was taken claimed the key,
-- the claim conflicts, nothing is inserted (inserted = 0, no prev) and the
-- caller runs the statement again to replay it. An expired claim of the
-- same key is replaced.
WITH arg AS (
    -- Ids travel as text: pgx would first try, and fail, to send a Go
    -- string as binary uuid, on every request.
    SELECT CAST(@key_id::text AS uuid) AS key_id, @idem_key::text AS idem_key, @tenant_id::bigint AS tenant_id
), lock AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended(arg.key_id::text || '/' || arg.idem_key, 7301)) AS ok FROM arg
), prev AS (
    SELECT i.request_hash, i.status, i.body FROM idempotency_keys i, arg
    WHERE i.key_id = arg.key_id AND i.key = arg.idem_key AND i.created_at > @since
), claim AS (
    INSERT INTO idempotency_keys (key_id, key, tenant_id, request_hash, status, body, created_at)
    SELECT arg.key_id, arg.idem_key, arg.tenant_id, @request_hash, @status, @body, @created_at FROM arg
    WHERE (SELECT ok FROM lock) AND NOT EXISTS (SELECT 1 FROM prev)
    ON CONFLICT (key_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, body = EXCLUDED.body, created_at = EXCLUDED.created_at
    WHERE idempotency_keys.created_at <= @since
    RETURNING 1
), ins AS (
    INSERT INTO events (id, tenant_id, environment, source, type, occurred_at, received_at, data, key_id)
    SELECT e.id, arg.tenant_id, @environment, e.source, e.type, e.occurred_at, e.received_at, e.data::jsonb, arg.key_id
    FROM arg, (SELECT unnest(CAST(@ids::text[] AS uuid[])) AS id, unnest(@sources::text[]) AS source, unnest(@types::text[]) AS type,
                 unnest(@occurred::timestamptz[]) AS occurred_at, unnest(@received::timestamptz[]) AS received_at,
                 unnest(@datas::text[]) AS data) AS e
    WHERE EXISTS (SELECT 1 FROM claim)
    RETURNING 1
)
SELECT (SELECT ok FROM lock)::bool AS locked,
       (SELECT count(*) FROM ins) AS inserted,
       p.request_hash, p.status, p.body
FROM (SELECT 1) AS one LEFT JOIN prev p ON true;

-- name: GetEvent :one
SELECT * FROM events WHERE tenant_id = @tenant_id AND environment = @environment AND id = @id;

-- name: ListEvents :many
-- Newest first; after is the last id of the previous page ('' for the first).
-- sources, when not empty, restricts to those sources (a source-bound key).
SELECT * FROM events
WHERE tenant_id = @tenant_id AND environment = @environment
  -- A bound the index can use whether or not a cursor is given.
  AND id < coalesce(nullif(@after::text, '')::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
  AND (@source::text = '' OR source = @source)
  AND (@type::text = '' OR type = @type)
  AND (cardinality(@sources::text[]) = 0 OR source = ANY(@sources::text[]))
ORDER BY id DESC
LIMIT @lim;

-- name: ListRequestLogs :many
-- The tenant's API request log, newest first, a page at a time, between
-- two bounds: rows after (lo, lo_request_id) and before (hi,
-- hi_request_id). A bound is a row of a page already shown (request ids
-- break ties between rows of the same microsecond) or a time with
-- request id '' (so lo is "at or after" and hi is "before"). key_id '' is
-- every key; status_min..status_max filters the status (0..999 for all);
-- path_prefix '' is every path; ips, when not empty, the addresses to
-- match. ListRequestLogsAfter must filter the same way.
SELECT * FROM api_request_logs
WHERE tenant_id = @tenant_id
  AND (@key_id::text = '' OR key_id = CAST(nullif(@key_id::text, '') AS uuid))
  AND status BETWEEN @status_min::int AND @status_max::int
  AND (@path_prefix::text = '' OR starts_with(path, @path_prefix::text))
  AND (cardinality(@ips::text[]) = 0 OR ip = ANY(@ips::text[]))
  -- Implied by the row comparisons, but only these let Postgres skip the
  -- partitions of other days.
  AND at >= @lo::timestamptz AND at <= @hi::timestamptz
  AND (at, request_id) > (@lo::timestamptz, @lo_request_id::text)
  AND (at, request_id) < (@hi::timestamptz, @hi_request_id::text)
ORDER BY at DESC, request_id DESC
LIMIT @lim;

-- name: ListRequestLogsAfter :many
-- ListRequestLogs oldest first: the rows just after lo, for a "newer" page,
-- which the caller shows newest first.
SELECT * FROM api_request_logs
WHERE tenant_id = @tenant_id
  AND (@key_id::text = '' OR key_id = CAST(nullif(@key_id::text, '') AS uuid))
  AND status BETWEEN @status_min::int AND @status_max::int
  AND (@path_prefix::text = '' OR starts_with(path, @path_prefix::text))
  AND (cardinality(@ips::text[]) = 0 OR ip = ANY(@ips::text[]))
  AND at >= @lo::timestamptz AND at <= @hi::timestamptz
  AND (at, request_id) > (@lo::timestamptz, @lo_request_id::text)
  AND (at, request_id) < (@hi::timestamptz, @hi_request_id::text)
ORDER BY at, request_id
LIMIT @lim;

-- name: GetRequestLogBetween :one
-- One request of the tenant by its request id, made in [lo, hi): its time,
-- which the log page's links carry, or the stretch its id tells of. Only
-- the partitions of that stretch are read.
SELECT * FROM api_request_logs
WHERE tenant_id = @tenant_id AND request_id = @request_id AND at >= @lo AND at < @hi
LIMIT 1;

-- name: GetRequestLog :one
-- One request of the tenant by an id that does not carry its time (made
-- before ids did): the tenant's rows are read newest first until it is
-- found, so a recent request is found at once and an unknown id reads them
-- all.
SELECT * FROM api_request_logs
WHERE tenant_id = @tenant_id AND request_id = @request_id
ORDER BY at DESC
LIMIT 1;

-- name: CountKeyOutcomesByHour :many
-- Requests per hour of one key since a time, by outcome, for its usage
-- charts: a row stands for count requests. Hours are UTC hours whatever
-- the session's time zone (which a half-hour zone would shift). Success
-- is any status below 400; client errors are 4xx but 429.
SELECT date_trunc('hour', at, 'UTC')::timestamptz AS hour,
       coalesce(sum(count) FILTER (WHERE status < 400), 0)::bigint AS success,
       coalesce(sum(count) FILTER (WHERE status BETWEEN 400 AND 499 AND status <> 429), 0)::bigint AS client_error,
       coalesce(sum(count) FILTER (WHERE status = 429), 0)::bigint AS rate_limited,
       coalesce(sum(count) FILTER (WHERE status >= 500), 0)::bigint AS server_error
FROM api_request_logs
WHERE tenant_id = @tenant_id AND key_id = CAST(@key_id::text AS uuid) AND at >= @since
GROUP BY 1
ORDER BY 1;

-- name: ListAPIKeysChangedSince :many
-- Every tenant's keys changed after @since, for the verifier's catch-up
-- after its listener was cut off: the verifier's cache holds every
-- tenant's keys, as its lookup by hash does.
SELECT id, changed_at FROM api_keys WHERE changed_at > @since;

-- name: DatabaseNow :one
-- The database's clock, which stamps changed_at: the verifier's catch-up
-- reckons in it, so the app's and the database's clocks need not agree.
SELECT clock_timestamp()::timestamptz AS now;
