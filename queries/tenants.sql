-- name: CreateTenant :one
INSERT INTO tenants (slug, name, plan) VALUES ($1, $2, $3)
RETURNING *;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = $1;

-- name: CountTenants :one
SELECT count(*) FROM tenants;

-- name: GetTenantBySlug :one
SELECT * FROM tenants WHERE slug = $1;
