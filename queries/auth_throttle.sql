-- name: GetThrottle :one
SELECT * FROM auth_throttle WHERE key = $1;

-- name: RecordThrottleFailure :one
-- Counts a failure in a one-hour window, on the application's clock, and
-- returns the new state; the caller decides the lock from the count.
INSERT INTO auth_throttle AS t (key, failures, window_start)
VALUES (sqlc.arg(key), 1, sqlc.arg(now))
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_start < sqlc.arg(now) - interval '1 hour' THEN 1 ELSE t.failures + 1 END,
    window_start = CASE WHEN t.window_start < sqlc.arg(now) - interval '1 hour' THEN sqlc.arg(now) ELSE t.window_start END
RETURNING *;

-- name: UndoThrottleFailure :one
-- Takes back one failure counted before the outcome was known (a sign-in
-- that turned out right) and returns the new state.
UPDATE auth_throttle SET failures = greatest(failures - 1, 0)
WHERE key = $1
RETURNING *;

-- name: LockThrottle :exec
UPDATE auth_throttle SET locked_until = $2 WHERE key = $1;

-- name: ClearThrottle :exec
DELETE FROM auth_throttle WHERE key = $1;

-- name: DeleteStaleThrottles :execrows
-- Counters whose window is over and that hold no lock matter no more; the
-- per-IP ones would otherwise pile up.
DELETE FROM auth_throttle
WHERE window_start < now() - interval '1 hour' AND (locked_until IS NULL OR locked_until < now());

-- name: LockThrottleKey :exec
-- Serialises attempts on one throttle key until the transaction ends, so
-- parallel requests cannot all pass the check before any failure is counted.
SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0));
