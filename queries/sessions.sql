-- name: GetSession :one
SELECT * FROM sessions WHERE id_hash = @id_hash AND expires_at > @now;

-- name: InsertSession :exec
INSERT INTO sessions (id_hash, user_id, data, created_at, last_seen_at, expires_at, ip, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: UpdateSession :exec
UPDATE sessions SET user_id = $2, data = $3, last_seen_at = $4 WHERE id_hash = $1;

-- name: DeleteSession :exec
DELETE FROM sessions WHERE id_hash = $1;

-- name: DeleteUserSessionsExcept :exec
DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2;

-- name: DeleteExpiredSessions :execrows
DELETE FROM sessions WHERE expires_at <= @now OR last_seen_at <= @idle_before;

-- name: TouchSession :exec
UPDATE sessions SET last_seen_at = @now WHERE id_hash = @id_hash;

-- name: DeleteUserSessions :execrows
-- Signs a user out everywhere, e.g. after an administrator resets their
-- password.
DELETE FROM sessions WHERE user_id = $1;
