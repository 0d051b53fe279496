-- name: CreateUser :one
INSERT INTO users (tenant_id, email, role, password_hash, must_change_password)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = $1;

-- name: GetUser :one
SELECT * FROM users WHERE id = $1;

-- name: GetUserForShare :one
-- The user, locked against changes (a new role, a disable) until the
-- transaction ends: a confirmed operation runs with the role it checked.
SELECT * FROM users WHERE id = $1 FOR SHARE;

-- name: SetUserPassword :exec
UPDATE users SET password_hash = $2, must_change_password = $3 WHERE id = $1;

-- name: EnrollUserTOTP :execrows
-- Only a user who is not enrolled yet can enrol: a second tab cannot
-- silently replace a working authenticator.
UPDATE users SET totp_secret_enc = $2, totp_enrolled_at = now(), totp_last_step = $3
WHERE id = $1 AND totp_enrolled_at IS NULL;

-- name: AdvanceUserTOTPStep :execrows
-- Accepts a TOTP time step at most once: zero rows means the step (or a later
-- one) was already used, which is a replay.
UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2;

-- name: ListUsersByTenant :many
SELECT id, email FROM users WHERE tenant_id = $1 ORDER BY id;
