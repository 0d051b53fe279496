package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
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
	store, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	var t db.Tenant
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, err = auth.CreateTenant(ctx, q, *slug, *name, *plan, time.Now())
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
	store, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
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
		u, err = auth.CreateUser(ctx, q, t.ID, *email, *role, password, oneTime, audit.Actor{Type: audit.ActorSystem, ID: "cli"}, time.Now())
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
	store, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	var password string
	err = store.InTx(ctx, func(q *db.Queries) error {
		password, err = auth.ResetPassword(ctx, q, *tenant, *email, audit.Actor{Type: audit.ActorSystem, ID: "cli"}, time.Now())
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

func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	cfg.dbFlags(fs)
	if err := parse(fs, args, stderr, "keyward audit verify [flags]"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	store, closeDB, err := openDB(ctx, &cfg, cfg.logger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := audit.Verify(ctx, store.Queries)
	if err != nil {
		return err
	}
	if rep.Broken != nil {
		fmt.Fprintf(stdout, "BROKEN: %s\n", rep.Broken)
		fmt.Fprintf(stderr, "audit chain broken after checking %d events\n", rep.Events)
		return errFailed
	}
	fmt.Fprintf(stdout, "ok: %d events in %d chains, every link intact\n", rep.Events, rep.Chains)
	return nil
}
