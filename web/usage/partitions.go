package usage

import (
	"context"
	"time"

	"keyward/db"
)

// The request log is partitioned by UTC day (migration 00005): a job
// creates each day's partition ahead, and retention drops a day whole
// once every row of it is past the retention. A row of a day with no
// partition yet lands in the default partition, never lost; the next
// EnsurePartitions gives that day its partition and moves the row there.

// PartitionsAhead is how many days after today have their partition ready.
const PartitionsAhead = 3

// EnsurePartitions creates the partitions of today (UTC, by now) and of
// the PartitionsAhead days after it, and of any day whose rows sit in the
// default partition. It returns how many it created.
func EnsurePartitions(ctx context.Context, q *db.Queries, now time.Time) (int, error) {
	n, err := q.EnsureRequestLogPartitions(ctx, db.EnsureRequestLogPartitionsParams{
		FromDay: now, ToDay: now.AddDate(0, 0, PartitionsAhead),
	})
	return int(n), err
}

// DropOldPartitions drops the partitions of days whose rows are all older
// than now less retention, and deletes older rows from the default
// partition. It returns how many partitions it dropped. Rows are so kept
// for the retention at least, and at most a day longer.
func DropOldPartitions(ctx context.Context, q *db.Queries, now time.Time, retention time.Duration) (int, error) {
	n, err := q.DropRequestLogPartitions(ctx, now.Add(-retention))
	return int(n), err
}
