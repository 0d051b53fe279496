-- Team management: members, invitations, and the lock that serialises
-- every change to a tenant's membership. Every query is scoped by tenant.

-- name: LockTenant :one
-- Taken first by every membership change, so two owners demoting or
-- disabling each other at once are judged one after the other.
SELECT id FROM tenants WHERE id = $1 FOR UPDATE;

-- name: ListMembers :many
SELECT id, email, role, totp_enrolled_at, disabled_at, last_sign_in_at, created_at
FROM users WHERE tenant_id = $1 ORDER BY email;

-- name: GetMemberForUpdate :one
SELECT * FROM users WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: GetMemberByEmail :one
SELECT * FROM users WHERE tenant_id = @tenant_id AND email = @email;

-- name: CountActiveOwners :one
SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND disabled_at IS NULL;

-- name: SetUserRole :exec
UPDATE users SET role = @role WHERE tenant_id = @tenant_id AND id = @id;

-- name: SetUserDisabled :exec
UPDATE users SET disabled_at = sqlc.narg(disabled_at) WHERE tenant_id = @tenant_id AND id = @id;

-- name: ResetUserTOTP :exec
-- The next sign-in goes to enrolment. totp_last_step stays: a code from a
-- step already accepted stays spent.
UPDATE users SET totp_secret_enc = NULL, totp_enrolled_at = NULL WHERE tenant_id = @tenant_id AND id = @id;

-- name: ReplaceUserTOTP :execrows
-- Swaps an enrolled user's authenticator for a confirmed new one.
UPDATE users SET totp_secret_enc = @totp_secret_enc, totp_last_step = greatest(totp_last_step, @totp_last_step)
WHERE id = @id AND totp_enrolled_at IS NOT NULL;

-- name: MarkUserSignedIn :exec
UPDATE users SET last_sign_in_at = @now WHERE id = @id;

-- name: CreateInvitation :one
INSERT INTO invitations (tenant_id, email, role, token_hash, created_by, created_at, expires_at)
VALUES (@tenant_id, @email, @role, @token_hash, @created_by, @created_at, @expires_at)
RETURNING *;

-- name: ListInvitations :many
-- Pending invitations, and those that ended in the last 30 days.
SELECT i.id, i.email, i.role, i.created_at, i.expires_at, i.accepted_at, i.revoked_at, u.email AS created_by_email
FROM invitations i JOIN users u ON u.id = i.created_by
WHERE i.tenant_id = @tenant_id AND greatest(i.accepted_at, i.revoked_at, i.expires_at) > @since::timestamptz
ORDER BY i.created_at DESC, i.id DESC
LIMIT 200;

-- name: GetInvitationForUpdate :one
SELECT * FROM invitations WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: GetInvitationByToken :one
SELECT * FROM invitations WHERE token_hash = $1;

-- name: GetInvitationByTokenForUpdate :one
SELECT * FROM invitations WHERE token_hash = $1 FOR UPDATE;

-- name: CountPendingInvitations :one
SELECT count(*) FROM invitations
WHERE tenant_id = @tenant_id AND email = @email
  AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > @now::timestamptz;

-- name: RevokeInvitation :exec
UPDATE invitations SET revoked_at = @now WHERE tenant_id = @tenant_id AND id = @id;

-- name: AcceptInvitation :exec
UPDATE invitations SET accepted_at = @now, accepted_by = @user_id WHERE id = @id;

-- name: ListUserSessions :many
SELECT id_hash, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
WHERE user_id = @user_id AND expires_at > @now::timestamptz AND last_seen_at > @idle_before::timestamptz
ORDER BY last_seen_at DESC;

-- name: EndOtherSessions :execrows
DELETE FROM sessions WHERE user_id = @user_id AND id_hash <> @keep;
