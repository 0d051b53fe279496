package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webhook"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg.dbFlags(fs)
	if err := parse(fs, args, stderr, "keyward migrate [flags]"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	_, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}

func cmdTenantCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	cfg.dbFlags(fs)
	slug := fs.String("slug", "", "URL-safe identifier, e.g. acme (required)")
	name := fs.String("name", "", "display name, e.g. \"Acme Inc.\" (required)")
	plan := fs.String("plan", "free", "free, solo, team or stack: sets the default rate limits")
	if err := parse(fs, args, stderr, "keyward tenant create --slug S --name N [--plan P]"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *slug == "" || *name == "" {
		fmt.Fprintln(stderr, "keyward tenant create: --slug and --name are required")
		return errUsage
	}
	keys, store, closeDB, err := openForChange(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	var t db.Tenant
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, err = auth.CreateTenant(ctx, q, keys, *slug, *name, *plan, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s created (id %d, plan %s)\n", t.Slug, t.ID, t.Plan)
	return nil
}

func cmdUserCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	cfg.dbFlags(fs)
	tenant := fs.String("tenant", "", "the tenant's slug (required)")
	email := fs.String("email", "", "the user's email address (required)")
	role := fs.String("role", "admin", "owner, admin or viewer")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input instead of printing a one-time password")
	if err := parse(fs, args, stderr, "keyward user create --tenant SLUG --email E [--role R] [--password-stdin]"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *tenant == "" || *email == "" {
		fmt.Fprintln(stderr, "keyward user create: --tenant and --email are required")
		return errUsage
	}
	password, oneTime := auth.GeneratePassword(), true
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		password, oneTime = strings.TrimRight(line, "\r\n"), false
	}
	keys, store, closeDB, err := openForChange(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := store.GetTenantBySlug(ctx, *tenant)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no tenant with slug %q (create it with: keyward tenant create)", *tenant)
	} else if err != nil {
		return err
	}
	var u db.User
	err = store.InTx(ctx, func(q *db.Queries) error {
		u, err = auth.CreateUser(ctx, q, keys, t.ID, *email, *role, password, oneTime, audit.Actor{Type: audit.ActorSystem, ID: "cli"}, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "user %s created in tenant %s with role %s\n", u.Email, t.Slug, u.Role)
	if oneTime {
		fmt.Fprintf(stderr, "one-time password (shown once; it must be changed at first sign-in):\n")
		fmt.Fprintln(stdout, password)
	}
	return nil
}

func cmdUserResetPassword(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("user reset-password", flag.ContinueOnError)
	cfg.dbFlags(fs)
	tenant := fs.String("tenant", "", "the tenant's slug (required)")
	email := fs.String("email", "", "the user's email address (required)")
	if err := parse(fs, args, stderr, "keyward user reset-password --tenant SLUG --email E\n\n"+
		"Prints a new one-time password, which must be changed after sign-in, ends the\n"+
		"user's sessions and lifts a sign-in lock. The second factor is unchanged."); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *tenant == "" || *email == "" {
		fmt.Fprintln(stderr, "keyward user reset-password: --tenant and --email are required")
		return errUsage
	}
	keys, store, closeDB, err := openForChange(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	var password string
	err = store.InTx(ctx, func(q *db.Queries) error {
		password, err = auth.ResetPassword(ctx, q, keys, *tenant, *email, audit.Actor{Type: audit.ActorSystem, ID: "cli"}, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "password of %s in tenant %s reset; their sessions are ended\n", auth.NormalizeEmail(*email), *tenant)
	fmt.Fprintf(stderr, "one-time password (shown once; it must be changed after sign-in):\n")
	fmt.Fprintln(stdout, password)
	return nil
}

func cmdAuditVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	cfg.dbFlags(fs)
	checkpoints := fs.String("checkpoints", "", "also check the checkpoints in this file (the server's \"audit checkpoint\" log lines, kept outside the database); - reads standard input")
	// Kept so scripts that pass it still run: a chain with only SHA-256
	// events now always fails.
	fs.Bool("require-keyed", true, "no effect, kept for scripts: a chain with events but none keyed always fails now")
	if err := parse(fs, args, stderr, "keyward audit verify [--checkpoints FILE] [flags]\n\n"+
		"Checks every audit chain's links and head with KEYWARD_SECRET_KEY, and with\n"+
		"--checkpoints that each checkpoint is signed by this installation and that\n"+
		"its chain still holds the event it names. Every problem is printed on\n"+
		"stdout as a BROKEN: line; the exit status is 1 when there is one."); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	keys, err := auditKeys(&cfg, false)
	if err != nil {
		return err
	}
	var cps []audit.Checkpoint
	if *checkpoints != "" {
		if cps, err = readCheckpoints(*checkpoints, stdin); err != nil {
			return err
		}
	}
	store, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := audit.Verify(ctx, store.Queries, keys)
	if err != nil {
		return err
	}
	var problems []audit.CheckpointProblem
	if *checkpoints != "" {
		if problems, err = audit.VerifyCheckpoints(ctx, store.Queries, keys.PublicKey(), cps); err != nil {
			return err
		}
	}
	for _, b := range rep.Breaks {
		fmt.Fprintf(stdout, "BROKEN: %s\n", b)
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "BROKEN: %s\n", p)
	}
	if len(rep.Breaks) == 0 {
		fmt.Fprintf(stdout, "ok: %d events in %d chains, every link intact\n", rep.Events, rep.Chains)
	}
	if *checkpoints != "" && len(problems) == 0 {
		fmt.Fprintf(stdout, "ok: %d checkpoints signed by this installation, each matching its chain\n", len(cps))
	}
	if len(rep.Breaks) > 0 || len(problems) > 0 {
		fmt.Fprintf(stderr, "audit trail broken: %d chains and %d checkpoints with a problem, after checking %d events\n", len(rep.Breaks), len(problems), rep.Events)
		return errFailed
	}
	return nil
}

// readCheckpoints reads the checkpoints kept in file, or on stdin for "-".
// A file with none is an error: checking nothing proves nothing.
func readCheckpoints(file string, stdin io.Reader) ([]audit.Checkpoint, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	cps, err := audit.ParseCheckpoints(r)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints from %s: %w", file, err)
	}
	if len(cps) == 0 {
		return nil, fmt.Errorf("no audit checkpoint in %s (they are the server's %q log lines)", file, audit.CheckpointLogMessage)
	}
	return cps, nil
}

func cmdAuditPublicKey(args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("audit public-key", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", env("KEYWARD_DATA_DIR", defaultDataDir), "where the generated dev secret lives (KEYWARD_DATA_DIR)")
	fs.StringVar(&cfg.Mode, "mode", env("KEYWARD_MODE", "development"), "development or production (KEYWARD_MODE)")
	raw := fs.Bool("base64", false, "print the raw 32-byte Ed25519 key in standard base64 instead of PEM")
	if err := parse(fs, args, stderr, "keyward audit public-key [--base64]\n\n"+
		"Prints the Ed25519 key that verifies audit checkpoints, derived from\n"+
		"KEYWARD_SECRET_KEY: a PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo, as\n"+
		"openssl reads it), or with --base64 the raw key. It is not secret."); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	keys, err := auditKeys(&cfg, false)
	if err != nil {
		return err
	}
	if *raw {
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(keys.PublicKey()))
		return nil
	}
	_, err = stdout.Write(keys.PublicKeyPEM())
	return err
}

// openForChange is what every command that changes the database needs:
// the audit trail's keys (which may be generated, as serve would) and the
// database, with the function that closes it.
func openForChange(ctx context.Context, cfg *config, stderr io.Writer) (*audit.Keys, *db.Store, func(), error) {
	keys, err := auditKeys(cfg, true)
	if err != nil {
		return nil, nil, nil, err
	}
	store, closeDB, err := openDB(ctx, cfg, cfg.logger(stderr))
	if err != nil {
		return nil, nil, nil, err
	}
	return keys, store, closeDB, nil
}

// auditKeys are the audit trail's keys, from KEYWARD_SECRET_KEY or, in
// development, from the secret serve generated into the data dir. Only
// commands that write to the embedded cluster of that same data dir may
// generate one (mayCreate), as serve would: anywhere else a new secret
// would key events, or check them, with a key the server does not use.
// The events any command writes reach the webhook endpoints that
// subscribe to them, as the server's do: their deliveries are enqueued
// with the events, and a running server sends them.
func auditKeys(cfg *config, mayCreate bool) (*audit.Keys, error) {
	if cfg.SecretKey == "" && !cfg.production() && (!mayCreate || cfg.DatabaseURL != "") {
		path := filepath.Join(cfg.DataDir, "secret.key")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("KEYWARD_SECRET_KEY is not set and there is no %s: set KEYWARD_SECRET_KEY to the server's secret key", path)
		}
	}
	ring, err := cfg.secretKey()
	if err != nil {
		return nil, err
	}
	keys := audit.NewKeys(ring)
	enq, err := webhook.NewEnqueuer(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	keys.Subscribe(enq)
	return keys, nil
}
