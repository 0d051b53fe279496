package db

import "github.com/jackc/pgx/v5"

// Tx returns the transaction q runs in, for a library that takes a pgx.Tx
// to join it: River's InsertTx enqueues a job in the same transaction as
// the change that causes it. ok is false for Queries made on a pool (the
// Store's own), which run each statement on its own.
func (q *Queries) Tx() (tx pgx.Tx, ok bool) {
	m, isMapped := q.db.(mapped)
	if !isMapped {
		tx, ok = q.db.(pgx.Tx)
		return tx, ok
	}
	tx, ok = m.DBTX.(pgx.Tx)
	return tx, ok
}
