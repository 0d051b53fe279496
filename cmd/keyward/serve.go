package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"keyward/db"
	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/jobs"
	"keyward/web/mail"
	"keyward/web/metrics"
	"keyward/web/ratelimit"
	"keyward/web/secretscan"
	webusage "keyward/web/usage"
	"keyward/web/webhook"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.serveFlags(fs)
	if err := parse(fs, args, stderr, "keyward serve [flags]"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := cfg.validateServe(); err != nil {
		return err
	}
	log := cfg.logger(stderr)
	tuneGC()
	ring, err := cfg.secretKey()
	if err != nil {
		return err
	}
	proxies, err := cfg.trustedProxies()
	if err != nil {
		return err
	}
	hosts, err := cfg.apiHosts()
	if err != nil {
		return err
	}
	webhookAllow, err := webhook.ParseNetworks(cfg.WebhookAllow)
	if err != nil {
		return err
	}
	rescueAfter, err := testRescueAfter(cfg.production())
	if err != nil {
		return err
	}
	// One set of metrics for the whole process, served at /metrics.
	m := metrics.New()
	limiter, closeRedis, err := rateLimiter(ctx, cfg.RedisURL, log, m)
	if err != nil {
		return err
	}
	defer closeRedis()
	var mailer mail.Sender
	if cfg.SMTPURL != "" {
		s, err := mail.ParseSMTP(cfg.SMTPURL)
		if err != nil {
			return err
		}
		log.Info("invitation links are mailed too", "smtp", s.String())
		mailer = s
	}
	var scanning *secretscan.KeySet
	if cfg.SecretScanningKeys != "" {
		if scanning, err = secretscan.LoadKeys(cfg.SecretScanningKeys); err != nil {
			// A malformed file stops the start: better than a route that
			// refuses every report.
			return fmt.Errorf("KEYWARD_SECRET_SCANNING_KEYS: %w", err)
		}
		log.Info("secret-scanning reports are accepted", "keys", scanning.Len())
	}
	// Bind first: a taken port should fail before a database is started.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	store, closeDB, err := openDB(ctx, &cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeDB()

	app, err := web.Build(web.Config{
		Production: cfg.production(), TrustedProxies: proxies, Logger: log, Issuer: issuer(cfg), BaseURL: cfg.baseURL(),
		APIHosts: hosts, APIHostsStrict: cfg.APIHostsStrict, Limiter: limiter, QuietSuccess: !cfg.production(), Metrics: m,
		Verifier: apikey.VerifierOptions{StaleMax: cfg.KeyStaleMax},
		Usage:    webusage.Options{LogBuffer: int64(cfg.LogBuffer)},
		Mail:     mailer, SecretScanning: scanning,
		Webhooks: webhook.Options{Allow: webhookAllow},
	}, store, ring)
	if err != nil {
		ln.Close()
		return err
	}
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	if err := app.Start(appCtx); err != nil {
		ln.Close()
		return err
	}
	var welcome *signIn
	if !cfg.production() {
		if welcome, err = seedDemo(ctx, store, &cfg, app.Audit); err != nil {
			ln.Close()
			return err
		}
	}

	// Periodic work (request-log partitions and retention, cleanup, audit
	// checkpoints) runs as River jobs, once across every instance. Not
	// under ctx: SIGTERM stops them gracefully below.
	runner, err := jobs.New(jobs.Config{Store: store, Sessions: app.Sessions, Retention: cfg.LogRetention, Log: log, Audit: app.Audit,
		Webhooks: app.Webhooks, RescueStuckAfter: rescueAfter})
	if err == nil {
		err = runner.Start(appCtx)
	}
	if err != nil {
		ln.Close()
		return err
	}
	srv := app.Echo.Server
	srv.Handler = app.Echo
	// The socket has been listening since net.Listen; requests wait in its
	// backlog until Serve. How to sign in is printed last, after every
	// start-up line and before any request can log one, so it does not
	// scroll away.
	log.Info("keyward listening", "url", cfg.baseURL(), "mode", cfg.Mode)
	if welcome != nil {
		welcome.print(stdout)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// SIGTERM: stop accepting, let in-flight requests finish, then close
	// the database (deferred above).
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	jobsDone := make(chan struct{})
	go func() { runner.Stop(shutCtx); close(jobsDone) }()
	shutErr := srv.Shutdown(shutCtx)
	if shutErr != nil {
		// Requests still running past the deadline lose their
		// connections. What every finished request recorded is flushed
		// below; one that is still running and logs after that is counted
		// as dropped (keyward_buffer_dropped_total).
		srv.Close()
	}
	<-jobsDone
	// Write what the usage buffers still hold, with time of its own.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelFlush()
	app.Close(flushCtx)
	// Last, sign the head of every audit chain that changed since its
	// last checkpoint, what the flush above wrote included, so that the
	// log holds the trail as this instance leaves it.
	cps, err := audit.TakeCheckpoints(flushCtx, store, app.Audit, time.Now())
	audit.LogCheckpoints(log, cps)
	if err != nil {
		log.Error("audit checkpoints at shutdown", "err", err)
	}
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// testRescueAfter reads KEYWARD_TEST_JOB_RESCUE_AFTER, which only crash
// tests set: how long a job may stay running before River takes the
// instance that runs it for dead and runs it again (River's default is an
// hour, which a test cannot wait). Not a setting: a low value in
// production would run slow jobs twice, so production mode refuses it.
func testRescueAfter(production bool) (time.Duration, error) {
	v := os.Getenv("KEYWARD_TEST_JOB_RESCUE_AFTER")
	if v == "" {
		return 0, nil
	}
	if production {
		return 0, errors.New("KEYWARD_TEST_JOB_RESCUE_AFTER is for crash tests only and is refused in production mode: unset it")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("KEYWARD_TEST_JOB_RESCUE_AFTER must be a duration of at least 1s, not %q", v)
	}
	return d, nil
}

// tuneGC lets the heap grow to three times what is live before a
// collection, instead of Go's default of twice: the API's requests
// allocate a few kilobytes each and keep nothing, so collections were
// frequent work over a small live heap. A soft limit of 120 MiB reins that
// in when something big is live: each password check's argon2id allocates
// 19 MiB, and under a sign-in flood the tripled heap took the process past
// 150 MB. GOGC and GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(120 << 20)
	}
}

// issuer names Keyward in authenticator apps: the portal's host.
func issuer(cfg config) string {
	if u, err := url.Parse(cfg.baseURL()); err == nil && u.Hostname() != "" {
		return "Keyward (" + u.Hostname() + ")"
	}
	return "Keyward"
}

// rateLimiter is Redis's when a URL is given, checked with a ping so a
// wrong URL fails at start, and otherwise in process.
func rateLimiter(ctx context.Context, redisURL string, log *slog.Logger, m *metrics.Set) (ratelimit.Limiter, func(), error) {
	if redisURL == "" {
		return ratelimit.NewMemory(), func() {}, nil
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		// Not %w: the parse error quotes the URL, password included.
		return nil, nil, errors.New("KEYWARD_REDIS_URL is not a valid redis:// or rediss:// URL")
	}
	// Short timeouts and no retries: the limiter falls back to memory
	// rather than hold a request while Redis is unwell.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.MaxRetries = 250*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond, -1
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("KEYWARD_REDIS_URL: cannot reach Redis at %s: %w", opt.Addr, err)
	}
	log.Info("rate limits are shared through Redis", "addr", opt.Addr)
	return ratelimit.NewRedis(rdb, log, m), func() { rdb.Close() }, nil
}

// The demo tenant and owner that development creates on an empty database.
const (
	demoTenant = "demo"
	demoEmail  = "owner@demo.keyward.test"
)

// signIn is what a development start prints about signing in.
type signIn struct {
	URL, Email string
	// Password is set on the first run only: the demo owner's one-time
	// password.
	Password string
	// Reset is the command that prints a new one-time password.
	Reset string
}

// seedDemo creates a demo tenant and owner on a database with no tenant,
// with a one-time password. On a later start it only finds the demo owner
// again, to say how to get a new password.
func seedDemo(ctx context.Context, store *db.Store, cfg *config, keys *audit.Keys) (*signIn, error) {
	in := &signIn{URL: cfg.baseURL() + "/login", Email: demoEmail,
		Reset: resetCommand(cfg, demoTenant, demoEmail)}
	n, err := store.CountTenants(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		t, terr := store.GetTenantBySlug(ctx, demoTenant)
		u, uerr := store.GetUserByEmail(ctx, demoEmail)
		if terr != nil || uerr != nil || u.TenantID != t.ID {
			// Tenants of one's own and no demo: no email to suggest.
			in.Email, in.Reset = "", resetCommand(cfg, "SLUG", "EMAIL")
		}
		return in, nil
	}
	in.Password = auth.GeneratePassword()
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, err := auth.CreateTenant(ctx, q, keys, demoTenant, "Demo Organisation", "team", time.Now())
		if err != nil {
			return err
		}
		_, err = auth.CreateUser(ctx, q, keys, t.ID, demoEmail, auth.RoleOwner, in.Password, true, audit.Actor{Type: audit.ActorSystem, ID: "first-run"}, time.Now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating the demo tenant: %w", err)
	}
	return in, nil
}

// resetCommand is the reset-password command line for this installation,
// ready to paste: it names the binary as it was started when that was by
// a relative path (./bin/keyward from make run), and a data dir other than
// the default. It never includes a database URL, which holds a password.
func resetCommand(cfg *config, tenant, email string) string {
	bin := "keyward"
	if a := os.Args[0]; filepath.Base(a) == "keyward" && !filepath.IsAbs(a) && strings.ContainsRune(a, filepath.Separator) {
		bin = a
	}
	cmd := bin + " user reset-password --tenant " + tenant + " --email " + email
	if cfg.DatabaseURL == "" && filepath.Clean(cfg.DataDir) != filepath.Clean(defaultDataDir) {
		cmd += " --data-dir " + shellQuote(cfg.DataDir)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// print writes the sign-in banner: a blank line, a heading, then the URL,
// the email and the one-time password, or on a later start how to get a
// new one. No side borders: a double-click or a triple-click copies
// cleanly.
func (in *signIn) print(w io.Writer) {
	var b strings.Builder
	if in.Password != "" {
		b.WriteString(heading("Keyward is ready"))
		b.WriteString("  A demo tenant and its owner were created.\n\n")
	} else {
		b.WriteString(heading("Keyward is running"))
	}
	fmt.Fprintf(&b, "    Sign in at   %s\n", in.URL)
	if in.Email != "" {
		fmt.Fprintf(&b, "    Email        %s\n", in.Email)
	}
	if in.Password != "" {
		fmt.Fprintf(&b, "    Password     %s\n\n", in.Password)
		b.WriteString("  The password is shown only now and works once: you choose your own\n")
		b.WriteString("  after signing in. Keep your authenticator app at hand.\n")
		b.WriteString("  Lost it? This prints a new one-time password:\n\n")
	} else {
		b.WriteString("\n  Lost the password? This prints a new one-time password:\n\n")
	}
	fmt.Fprintf(&b, "    %s\n\n", in.Reset)
	b.WriteString(strings.Repeat("─", bannerWidth) + "\n\n")
	io.WriteString(w, b.String())
}

const bannerWidth = 72

// heading is a blank line, a rule with title in it, and a blank line.
func heading(title string) string {
	return "\n─── " + title + " " + strings.Repeat("─", max(3, bannerWidth-5-utf8.RuneCountInString(title))) + "\n\n"
}
