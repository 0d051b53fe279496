// Package jobs runs Keyward's periodic work on River, a job queue kept in
// Postgres (its tables come with our migrations: db.Migrate). Every
// instance runs a River client; River elects one leader among them, and
// only the leader schedules periodic jobs, each unique within its period,
// so a job runs once however many instances there are. The work itself
// lives in the domain packages; a worker only calls it.
//
// The jobs:
//
//   - request_log_partitions (hourly, and at start): the request log's
//     partitions of today and the days ahead, and of any day whose rows
//     sit in the default partition (usage.EnsurePartitions);
//   - request_log_retention (hourly, and at start): drops the request
//     log's days past the retention (usage.DropOldPartitions);
//   - cleanup (every ten minutes): ended sessions, stale sign-in throttle
//     counters, expired idempotency keys, webhook attempts past 30 days;
//   - audit_checkpoint (every five minutes): signs the head
//     of every audit chain that changed since its last checkpoint, logs
//     each checkpoint and records it in its chain
//     (audit.TakeCheckpoints).
//   - idle_keys (hourly, and at start): disables the keys that the
//     idle-key policy of their organisation says are idle
//     (apikey.DisableIdleKeys), each audited as done by the system.
//   - key_expiry (every ten minutes, and at start): records
//     api_key.expiring 14 days and 1 day before each live key's expiry
//     and api_key.expired once it has passed, each once per key
//     (apikey.RecordExpiries).
//
// And, on a queue of their own (webhooks) so a slow receiver never holds
// up the periodic jobs, the webhook deliveries: enqueued by web/webhook
// in the transaction that writes each audit event, worked here by
// webhook.Service.Deliver, retried with River's backoff.
//
// It must not import echo.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/events"
	"keyward/web/session"
	"keyward/web/usage"
	"keyward/web/webhook"
)

// Config is what the jobs need.
type Config struct {
	Store    *db.Store
	Sessions *session.Store
	// Retention is how long request-log rows are kept.
	Retention time.Duration
	Log       *slog.Logger
	// Now is the application's clock; nil means time.Now.
	Now func() time.Time
	// Audit keys and signs the audit checkpoints.
	Audit *audit.Keys
	// CheckpointAtStart runs the checkpoint job when the leader starts
	// too, as tests want. serve leaves it off: each instance checkpoints
	// at its shutdown, and the job's first run comes CheckpointEvery
	// after the start.
	CheckpointAtStart bool
	// Webhooks delivers webhook alerts; nil runs no deliveries.
	Webhooks *webhook.Service
	// RescueStuckAfter is how long a job may stay running before River
	// takes its instance for dead and runs it again; zero is River's
	// hour. The job timeout shrinks with it. Only crash tests set it.
	RescueStuckAfter time.Duration
}

// How often each job runs.
const (
	PartitionsEvery = time.Hour
	RetentionEvery  = time.Hour
	CleanupEvery    = 10 * time.Minute
	CheckpointEvery = 5 * time.Minute
	IdleKeysEvery   = time.Hour
	KeyExpiryEvery  = 10 * time.Minute
)

// Runner is the application's River client.
type Runner struct {
	client *river.Client[pgx.Tx]
	log    *slog.Logger
}

// New builds the runner; Start starts it.
func New(cfg Config) (*Runner, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		return nil, errors.New("jobs: the request-log retention must be positive")
	}
	if cfg.Audit == nil {
		return nil, errors.New("jobs: the audit keys are missing")
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &partitionsWorker{cfg: cfg})
	river.AddWorker(workers, &retentionWorker{cfg: cfg})
	river.AddWorker(workers, &cleanupWorker{cfg: cfg})
	river.AddWorker(workers, &checkpointWorker{cfg: cfg})
	river.AddWorker(workers, &idleKeysWorker{cfg: cfg})
	river.AddWorker(workers, &keyExpiryWorker{cfg: cfg})
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}}
	if cfg.Webhooks != nil {
		river.AddWorker(workers, &deliveryWorker{cfg: cfg})
		// Polled every second: an alert should not wait long.
		queues[webhook.Queue] = river.QueueConfig{MaxWorkers: webhook.Workers, FetchPollInterval: time.Second}
	}
	jobTimeout := time.Minute
	if cfg.RescueStuckAfter > 0 && cfg.RescueStuckAfter < jobTimeout {
		jobTimeout = cfg.RescueStuckAfter // River wants the rescue no sooner than the timeout
	}
	periodic := func(every time.Duration, args river.JobArgs, atStart bool) *river.PeriodicJob {
		return river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
			// Unique in its period: a second leader (after a failover)
			// or a start-up run does not add a second job.
			return args, &river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: every}}
		}, &river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: atStart})
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Store.Pool), &river.Config{
		// River logs its own life at info and debug: only its warnings
		// and errors reach our log.
		Logger:  slog.New(minLevel{cfg.Log.Handler(), slog.LevelWarn}),
		Workers: workers,
		Queues:  queues,
		// Polling instead of LISTEN: no connection of the pool is held
		// for River alone, and these jobs can wait a few seconds.
		PollOnly:          true,
		FetchPollInterval: 2 * time.Second,
		PeriodicJobs: []*river.PeriodicJob{
			periodic(PartitionsEvery, PartitionsArgs{}, true),
			periodic(RetentionEvery, RetentionArgs{}, true),
			periodic(CleanupEvery, CleanupArgs{}, false),
			periodic(CheckpointEvery, CheckpointArgs{}, cfg.CheckpointAtStart),
			periodic(IdleKeysEvery, IdleKeysArgs{}, true),
			periodic(KeyExpiryEvery, KeyExpiryArgs{}, true),
		},
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: cfg.RescueStuckAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Runner{client: client, log: cfg.Log}, nil
}

// Start starts working jobs, until Stop. ctx is not the process's
// signal context: cancelling it would cancel running jobs.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones to finish; when ctx
// ends first, it cancels them and waits for them to return.
func (r *Runner) Stop(ctx context.Context) {
	if err := r.client.Stop(ctx); err == nil {
		return
	}
	r.log.Warn("jobs still running at shutdown are cancelled")
	hard, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.client.StopAndCancel(hard); err != nil {
		r.log.Error("stopping jobs", "err", err)
	}
}

// Client is the River client, for tests that insert or watch jobs.
func (r *Runner) Client() *river.Client[pgx.Tx] { return r.client }

// PartitionsArgs is the job that creates request-log partitions ahead.
type PartitionsArgs struct{}

// Kind names the job in River's tables.
func (PartitionsArgs) Kind() string { return "request_log_partitions" }

type partitionsWorker struct {
	river.WorkerDefaults[PartitionsArgs]
	cfg Config
}

func (w *partitionsWorker) Work(ctx context.Context, _ *river.Job[PartitionsArgs]) error {
	n, err := usage.EnsurePartitions(ctx, w.cfg.Store.Queries, w.cfg.Now())
	if err != nil {
		return failed(w.cfg.Log, fmt.Errorf("creating request-log partitions: %w", err))
	}
	if n > 0 {
		w.cfg.Log.Info("request-log partitions created", "count", n)
	}
	return nil
}

// RetentionArgs is the job that drops the request log's old days.
type RetentionArgs struct{}

// Kind names the job in River's tables.
func (RetentionArgs) Kind() string { return "request_log_retention" }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	cfg Config
}

func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	n, err := usage.DropOldPartitions(ctx, w.cfg.Store.Queries, w.cfg.Now(), w.cfg.Retention)
	if err != nil {
		return failed(w.cfg.Log, fmt.Errorf("dropping old request-log partitions: %w", err))
	}
	if n > 0 {
		w.cfg.Log.Info("request-log partitions past their retention dropped", "count", n, "retention", w.cfg.Retention.String())
	}
	return nil
}

// CleanupArgs is the job that deletes what has expired: ended sessions,
// stale sign-in throttle counters, idempotency keys past their 24 hours,
// webhook attempts past their 30 days.
type CleanupArgs struct{}

// Kind names the job in River's tables.
func (CleanupArgs) Kind() string { return "cleanup" }

type cleanupWorker struct {
	river.WorkerDefaults[CleanupArgs]
	cfg Config
}

// Work runs every step, even after one fails, and fails with all their
// errors, so River retries the job.
func (w *cleanupWorker) Work(ctx context.Context, _ *river.Job[CleanupArgs]) error {
	var errs []error
	if n, err := w.cfg.Sessions.DeleteExpired(ctx); err != nil {
		errs = append(errs, fmt.Errorf("deleting expired sessions: %w", err))
	} else if n > 0 {
		w.cfg.Log.Info("expired sessions deleted", "count", n)
	}
	if _, err := w.cfg.Store.DeleteStaleThrottles(ctx); err != nil {
		errs = append(errs, fmt.Errorf("deleting stale throttle counters: %w", err))
	}
	if _, err := events.ExpireIdempotencyKeys(ctx, w.cfg.Store.Queries, w.cfg.Now()); err != nil {
		errs = append(errs, fmt.Errorf("deleting expired idempotency keys: %w", err))
	}
	if _, err := webhook.DeleteOldAttempts(ctx, w.cfg.Store, w.cfg.Now()); err != nil {
		errs = append(errs, fmt.Errorf("deleting old webhook attempts: %w", err))
	}
	if len(errs) > 0 {
		return failed(w.cfg.Log, errors.Join(errs...))
	}
	return nil
}

// CheckpointArgs is the job that signs the heads of the audit chains
// that changed since their last checkpoint.
type CheckpointArgs struct{}

// Kind names the job in River's tables.
func (CheckpointArgs) Kind() string { return "audit_checkpoint" }

type checkpointWorker struct {
	river.WorkerDefaults[CheckpointArgs]
	cfg Config
}

// Work logs every checkpoint it took, those of chains done before an
// error included, and fails with the error for River to retry: chains
// already checkpointed are then skipped, as unchanged.
func (w *checkpointWorker) Work(ctx context.Context, _ *river.Job[CheckpointArgs]) error {
	cps, err := audit.TakeCheckpoints(ctx, w.cfg.Store, w.cfg.Audit, w.cfg.Now())
	audit.LogCheckpoints(w.cfg.Log, cps)
	if err != nil {
		return failed(w.cfg.Log, err)
	}
	return nil
}

// IdleKeysArgs is the job that disables idle keys per their
// organisation's policy.
type IdleKeysArgs struct{}

// Kind names the job in River's tables.
func (IdleKeysArgs) Kind() string { return "idle_keys" }

type idleKeysWorker struct {
	river.WorkerDefaults[IdleKeysArgs]
	cfg Config
}

func (w *idleKeysWorker) Work(ctx context.Context, _ *river.Job[IdleKeysArgs]) error {
	n, err := apikey.DisableIdleKeys(ctx, w.cfg.Store, w.cfg.Audit, w.cfg.Now())
	if n > 0 {
		w.cfg.Log.Info("idle keys disabled per their organisation's policy", "count", n)
	}
	if err != nil {
		return failed(w.cfg.Log, fmt.Errorf("disabling idle keys: %w", err))
	}
	return nil
}

// KeyExpiryArgs is the job that records keys' expiry notices and
// expiries in the audit trail.
type KeyExpiryArgs struct{}

// Kind names the job in River's tables.
func (KeyExpiryArgs) Kind() string { return "key_expiry" }

type keyExpiryWorker struct {
	river.WorkerDefaults[KeyExpiryArgs]
	cfg Config
}

func (w *keyExpiryWorker) Work(ctx context.Context, _ *river.Job[KeyExpiryArgs]) error {
	n, err := apikey.RecordExpiries(ctx, w.cfg.Store, w.cfg.Audit, w.cfg.Now())
	if n.Notices > 0 || n.Expired > 0 {
		w.cfg.Log.Info("key expiries recorded", "notices", n.Notices, "expired", n.Expired)
	}
	if err != nil {
		return failed(w.cfg.Log, fmt.Errorf("recording key expiries: %w", err))
	}
	return nil
}

type deliveryWorker struct {
	river.WorkerDefaults[webhook.DeliveryArgs]
	cfg Config
}

// Timeout leaves room for the attempt's own bound and its record. River's
// rescuer leaves a delivery stuck in running (its instance died) alone
// for at least this long, so it is kept short.
func (w *deliveryWorker) Timeout(*river.Job[webhook.DeliveryArgs]) time.Duration {
	return webhook.AttemptTimeout + 5*time.Second
}

// Work makes one attempt; Deliver logs a failed one itself, at warning:
// a receiver that is down is the receiver's matter, not an error of ours.
func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[webhook.DeliveryArgs]) error {
	return w.cfg.Webhooks.Deliver(ctx, job.Args, job.ID, job.Attempt)
}

// failed logs a job's error and returns it, for River to retry the job
// (River itself reports failed attempts below the level it logs at).
func failed(log *slog.Logger, err error) error {
	log.Error("job failed; it is retried", "err", err)
	return err
}

// minLevel passes on only records of at least min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
