-- +goose Up

-- The request log becomes partitioned by UTC day (RANGE on at), and a row
-- can stand for many requests (count).
--
-- Why partitions: retention used to DELETE rows one by one, a long write
-- that left dead rows to vacuum. Now a job drops a whole day's table once
-- every row of it is past KEYWARD_REQUEST_LOG_RETENTION, and another job
-- creates each day's table a few days ahead. Partitions are named
-- api_request_logs_pYYYYMMDD; the functions below create and drop them,
-- and only they should.
--
-- A row whose day has no partition yet is never refused: it lands in the
-- DEFAULT partition, api_request_logs_default. We chose a default
-- partition over creating the partition when a COPY fails for want of one
-- because it holds for every writer (the request-log flush, an INSERT in a
-- test, a fix made by hand), keeps DDL and its locks off the write path,
-- and still works when the job runner has been down for days. What it
-- costs, and how it is paid:
--   * a day's partition cannot be attached while the default holds rows of
--     that day, so request_log_partition_create moves them across in the
--     same transaction, with the default locked so no new row of that day
--     slips in between;
--   * the job that creates partitions ahead also creates the partition of
--     every day the default holds rows of, so the default stays nearly
--     empty (and the scan ATTACH makes of it cheap);
--   * with a default partition, Postgres cannot DETACH ... CONCURRENTLY,
--     so dropping a day takes a brief ACCESS EXCLUSIVE lock on
--     api_request_logs. Writes and reads of the log are short; the
--     functions give up after 5 s of waiting for a lock (lock_timeout) and
--     the job tries again later.
--
-- count: 1 for a row written per request. Refusals of one key past its
-- per-minute budget (web/usage) are counted instead of written one by
-- one: one row per key, status, error code and minute carries how many
-- there were, with the first of them's method, path, address and request
-- id, and their mean latency.
ALTER TABLE api_request_logs RENAME TO api_request_logs_unpartitioned;

CREATE TABLE api_request_logs (
    tenant_id  bigint      NOT NULL,
    key_id     uuid        NOT NULL,
    -- The display prefix of the secret presented: which one of a key's
    -- secrets (during a rotation's grace) made the request.
    key_prefix text        NOT NULL,
    method     text        NOT NULL,
    path       text        NOT NULL,
    status     integer     NOT NULL,
    ip         text        NOT NULL,
    latency_us bigint      NOT NULL,
    request_id text        NOT NULL,
    at         timestamptz NOT NULL,
    count      integer     NOT NULL DEFAULT 1 CHECK (count >= 1)
) PARTITION BY RANGE (at);

CREATE TABLE api_request_logs_default PARTITION OF api_request_logs DEFAULT;

-- request_log_partition_create creates the partition of the UTC day that
-- holds day_of, unless it exists, and moves into it the rows of that day
-- the default partition holds. It returns whether it created one. The
-- table is made apart and attached (ATTACH takes a lighter lock on
-- api_request_logs than CREATE TABLE ... PARTITION OF); ATTACH builds its
-- indexes.
-- +goose StatementBegin
CREATE FUNCTION request_log_partition_create(day_of timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('day', day_of, 'UTC');
    part text := 'api_request_logs_p' || to_char(day_of AT TIME ZONE 'UTC', 'YYYYMMDD');
    -- Bounds spelled out in UTC, whatever the session's DateStyle.
    lo_text text := to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00';
    hi_text text := to_char((lo + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00';
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    -- One creator or dropper at a time, whichever instance runs it.
    PERFORM pg_advisory_xact_lock(hashtext('keyward.request_log_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE api_request_logs_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE api_request_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM api_request_logs_default WHERE at >= $1 AND at < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', part) USING lo, lo + interval '1 day';
    EXECUTE format('ALTER TABLE api_request_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo_text, hi_text);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- request_log_partitions_ensure creates the partitions of every UTC day
-- from from_day through to_day, and of every day the default partition holds
-- rows of. It returns how many it created.
-- +goose StatementBegin
CREATE FUNCTION request_log_partitions_ensure(from_day timestamptz, to_day timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d       timestamptz;
    created integer := 0;
BEGIN
    FOR d IN
        SELECT g FROM generate_series(date_trunc('day', from_day, 'UTC'), date_trunc('day', to_day, 'UTC'), interval '1 day') AS g
        UNION
        SELECT DISTINCT date_trunc('day', at, 'UTC') FROM api_request_logs_default
    LOOP
        IF request_log_partition_create(d) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
-- +goose StatementEnd

-- request_log_partitions_drop drops every day's partition whose rows are
-- all older than older_than, and deletes the default partition's rows
-- older than that. It returns how many partitions it dropped.
-- +goose StatementBegin
CREATE FUNCTION request_log_partitions_drop(older_than timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part    text;
    dropped integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    PERFORM pg_advisory_xact_lock(hashtext('keyward.request_log_partitions'));
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'api_request_logs'::regclass
          AND c.relname ~ '^api_request_logs_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 19), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= older_than
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM api_request_logs_default WHERE at < older_than;
    RETURN dropped;
END
$$;
-- +goose StatementEnd

-- A partition for every day the old table has rows of, and for today and
-- the three days after it, then the rows.
SELECT request_log_partitions_ensure(now(), now() + interval '3 days');
SELECT request_log_partition_create(d)
FROM (SELECT DISTINCT date_trunc('day', at, 'UTC') AS d FROM api_request_logs_unpartitioned) AS days;
INSERT INTO api_request_logs (tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
SELECT tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at FROM api_request_logs_unpartitioned;
DROP TABLE api_request_logs_unpartitioned;

-- Built after the copy, which is faster, on every partition at once. No
-- BRIN index on at any more: retention drops partitions.
CREATE INDEX api_request_logs_tenant_idx ON api_request_logs (tenant_id, at DESC);
CREATE INDEX api_request_logs_key_idx ON api_request_logs (key_id, at DESC);

-- +goose Down
ALTER TABLE api_request_logs RENAME TO api_request_logs_partitioned;
CREATE TABLE api_request_logs (
    tenant_id  bigint      NOT NULL,
    key_id     uuid        NOT NULL,
    key_prefix text        NOT NULL,
    method     text        NOT NULL,
    path       text        NOT NULL,
    status     integer     NOT NULL,
    ip         text        NOT NULL,
    latency_us bigint      NOT NULL,
    request_id text        NOT NULL,
    at         timestamptz NOT NULL
);
-- A counted row becomes as many rows as it counted, as before.
INSERT INTO api_request_logs (tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
SELECT tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at
FROM api_request_logs_partitioned, generate_series(1, count);
DROP TABLE api_request_logs_partitioned;
DROP FUNCTION request_log_partitions_drop(timestamptz);
DROP FUNCTION request_log_partitions_ensure(timestamptz, timestamptz);
DROP FUNCTION request_log_partition_create(timestamptz);
CREATE INDEX api_request_logs_tenant_idx ON api_request_logs (tenant_id, at DESC);
CREATE INDEX api_request_logs_key_idx ON api_request_logs (key_id, at DESC);
CREATE INDEX api_request_logs_at_brin ON api_request_logs USING brin (at);
