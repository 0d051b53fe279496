// Package db is Keyward's door to PostgreSQL. Other packages call the
// methods generated here instead of writing SQL; the key cache's LISTEN
// connection (web/apikey) and the benchmark tool (cmd/kwbench) are the only
// exceptions.
//
// It owns:
//
//   - the schema, as goose migrations in db/migrations, embedded in the
//     binary (migrate.go). Migrate applies what is pending at every start of
//     `keyward serve` and `keyward migrate`, under a Postgres advisory lock,
//     so instances that start together do not race. sqlc reads the same
//     files as its schema;
//   - the query code sqlc generates from queries/*.sql, as sqlc.yaml says:
//     sqlc_db.go (Queries, New, WithTx), sqlc_models.go (one struct per
//     table), one <file>.sql.go per query file, and copyfrom.go for COPY.
//     These files say "DO NOT EDIT" and are committed;
//   - Store (store.go): the pool plus Queries, and InTx, which runs a
//     function in one transaction. A change and its audit event go through
//     the same InTx, so they commit together or not at all;
//   - the named errors ErrNotFound, ErrConflict and ErrUnavailable. Every
//     Queries a Store hands out (its own, and InTx's) already returns them
//     in place of pgx's "no rows", unique violations and lost connections,
//     with the original error kept in the chain. Callers test with
//     errors.Is and never look at SQLSTATEs.
//
// Two subpackages belong with it: db/pglocal starts the private PostgreSQL
// cluster that `keyward serve` uses when KEYWARD_DATABASE_URL is unset, from
// the machine's PostgreSQL binaries; db/dbtest gives every test a database
// of its own, cloned from a migrated template.
//
// # Adding a migration
//
//  1. Name the file after the highest one in db/migrations, plus one, with
//     five digits and a few words: 00004_webhooks.sql after
//     00003_public_api.sql. Never edit a migration that has been merged:
//     databases that already ran it will not run it again. Fix forward with
//     a new file.
//
//  2. Start it with a "-- +goose Up" line and the statements that make the
//     change, then a "-- +goose Down" line and the statements that undo it,
//     in reverse order. Wrap a statement that holds semicolons of its own,
//     such as a plpgsql function, in "-- +goose StatementBegin" and
//     "-- +goose StatementEnd". Keyward only ever migrates up, but Down
//     must still work for whoever rolls back by hand.
//
//  3. Run `make generate`. sqlc rereads the schema, so the models in
//     sqlc_models.go and any query that touches the changed tables follow.
//
//  4. Commit the migration and the regenerated files together. `make test`
//     fails while they are stale: its check-generated step runs `sqlc diff`,
//     regenerates templ's output, and stops when views/*_templ.go or db/*.go
//     differ from what git holds or are not committed. The database tests
//     apply every migration to their template, so a migration that does not
//     run fails them too.
//
// # Adding a query
//
//  1. Write it in the file of queries/ for the table it is about (or a new
//     queries/<table>.sql), under a name annotation such as
//     "-- name: GetThingByX :one" on the line above it. The name becomes the
//     Go method; name it by what it returns. The
//     suffix says what the method returns: :one (one row; no row is
//     ErrNotFound), :many (a slice), :exec
//     (only an error), :execrows (the number of rows touched), :copyfrom
//     (a bulk COPY). Comment lines under the annotation become the method's
//     doc comment.
//
//  2. Scope it by tenant. A query over a tenant's rows takes the tenant id
//     and filters on it, even when another id would be enough, so an id
//     from another tenant finds nothing, as in
//     "SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id".
//     The exceptions are lookups made before the tenant is known, or keyed
//     by something that already belongs to one tenant, or that span every
//     tenant on purpose: a key by its secret's hash, a user by email at
//     sign-in or by the id in the session, that user's recovery codes and
//     sessions, the sign-in throttle counters, the tenants table itself,
//     the audit chains and the retention jobs. Say why in a comment when
//     you add another.
//
//  3. Use named parameters (@name) for readable Go field names, and
//     sqlc.narg(name) where NULL is a valid value. sqlc.yaml maps uuid to
//     string and timestamptz to time.Time (a pointer when nullable).
//
//  4. Run `make generate` (it runs `go tool sqlc generate`, then `go tool
//     templ generate`) and commit the query with the generated code.
package db
