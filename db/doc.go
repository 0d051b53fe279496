// Package db is Keyward's only door to Postgres: the goose migrations
// (embedded, also read by sqlc as the schema), the sqlc-generated queries,
// the Store with InTx, and the named errors ErrNotFound and ErrConflict.
//
// To change the schema, add a file db/migrations/NNNNN_what.sql with
// "-- +goose Up" and "-- +goose Down" sections; never edit a migration that
// has landed. To add a query, write it in queries/<table>.sql with a
// "-- name: GetThingByX :one" comment (named by what it returns, scoped by
// tenant), then run `make generate` and commit the generated files; `make
// test` fails while they are stale.
//
// Subpackages: pglocal runs the embedded PostgreSQL cluster for `serve`;
// dbtest gives each test its own migrated database.
package db
