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
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"

	"keyward/db"
	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/events"
	"keyward/web/ratelimit"
	"keyward/web/session"
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
	hosts, err := apikey.ParseHosts(cfg.APIHosts)
	if err != nil {
		return err
	}
	limiter, closeRedis, err := rateLimiter(ctx, cfg.RedisURL, log)
	if err != nil {
		return err
	}
	defer closeRedis()
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
		APIHosts: hosts, Limiter: limiter, QuietSuccess: !cfg.production(),
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
	if !cfg.production() {
		if err := seedDemo(ctx, store, cfg.baseURL(), stdout); err != nil {
			ln.Close()
			return err
		}
	}

	go cleanupLoop(ctx, store, app.Sessions, cfg.LogRetention, log)
	srv := app.Echo.Server
	srv.Handler = app.Echo
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("keyward listening", "url", cfg.baseURL(), "mode", cfg.Mode)

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
	shutErr := srv.Shutdown(shutCtx)
	if shutErr != nil {
		// Requests still running past the deadline lose their
		// connections. What every finished request recorded is flushed
		// below; one that is still running and logs after that is counted
		// as dropped (keyward_buffer_dropped_total).
		srv.Close()
	}
	// Write what the usage buffers still hold, with time of its own.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelFlush()
	app.Close(flushCtx)
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// tuneGC lets the heap grow to three times what is live before a
// collection, instead of Go's default of twice: the API's requests
// allocate a few kilobytes each and keep nothing, so collections were
// frequent work over a small live heap. GOGC, when set, wins; GOMEMLIMIT
// works as usual.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
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
func rateLimiter(ctx context.Context, redisURL string, log *slog.Logger) (ratelimit.Limiter, func(), error) {
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
	return ratelimit.NewRedis(rdb, log), func() { rdb.Close() }, nil
}

// cleanupLoop deletes ended sessions, stale throttle counters, expired
// idempotency keys and request logs past their retention, every ten
// minutes.
func cleanupLoop(ctx context.Context, store *db.Store, sessions *session.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := sessions.DeleteExpired(ctx); err != nil {
				log.Error("deleting expired sessions", "err", err)
			} else if n > 0 {
				log.Info("expired sessions deleted", "count", n)
			}
			if _, err := store.DeleteStaleThrottles(ctx); err != nil {
				log.Error("deleting stale throttle counters", "err", err)
			}
			if _, err := events.ExpireIdempotencyKeys(ctx, store.Queries, time.Now()); err != nil {
				log.Error("deleting expired idempotency keys", "err", err)
			}
			if _, err := store.DeleteOldRequestLogs(ctx, time.Now().Add(-retention)); err != nil {
				log.Error("deleting old request logs", "err", err)
			}
		}
	}
}

// seedDemo creates a demo tenant and owner on a database with no tenant,
// and prints how to sign in, once.
func seedDemo(ctx context.Context, store *db.Store, baseURL string, stdout io.Writer) error {
	n, err := store.CountTenants(ctx)
	if err != nil || n > 0 {
		return err
	}
	const email = "owner@demo.keyward.test"
	password := auth.GeneratePassword()
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, err := auth.CreateTenant(ctx, q, "demo", "Demo Organisation", "team")
		if err != nil {
			return err
		}
		_, err = auth.CreateUser(ctx, q, t.ID, email, auth.RoleOwner, password, true, audit.Actor{Type: audit.ActorSystem, ID: "first-run"})
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the demo tenant: %w", err)
	}
	fmt.Fprintf(stdout, `
  Keyward is ready: a demo tenant and its owner were created.

    Sign in at   %s/login
    Email        %s
    Password     %s   (one-time: you will choose your own after sign-in)

  This password is shown only now. Keep your authenticator app at hand.

`, baseURL, email, password)
	return nil
}
