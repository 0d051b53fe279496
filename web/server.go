// Package web builds the one echo application: shared middleware, the
// portal route tree (web/portal), health checks, static files and the error
// handler. It wires; the handlers live in their own packages.
package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"keyward/db"
	"keyward/static"
	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/events"
	"keyward/web/keyring"
	"keyward/web/mail"
	"keyward/web/metrics"
	"keyward/web/mfa"
	"keyward/web/org"
	"keyward/web/portal"
	"keyward/web/ratelimit"
	"keyward/web/secretscan"
	"keyward/web/session"
	"keyward/web/usage"
	"keyward/web/webhook"
)

// Config is what the server needs to know about its deployment.
type Config struct {
	Production bool
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	TrustedProxies []*net.IPNet
	Logger         *slog.Logger
	// QuietSuccess leaves requests with a status below 400 out of the log
	// (development); metrics still count them.
	QuietSuccess bool
	// Issuer names Keyward in authenticator apps.
	Issuer string
	// BaseURL is the portal's public URL.
	BaseURL string
	// APIHosts binds public-API host names to environments.
	APIHosts apikey.Hosts
	// APIHostsStrict refuses public-API requests to hosts not in APIHosts.
	APIHostsStrict bool
	// Limiter keeps the keys' rate limits; nil means in this process.
	Limiter ratelimit.Limiter
	// Verifier sizes the key cache; zero values take the defaults.
	Verifier apikey.VerifierOptions
	// Hashes bounds the argon2id work of sign-ins and password changes;
	// nil means the process-wide auth.DefaultHashLimit.
	Hashes *auth.HashLimit
	// Metrics counts into one set, served at /metrics; nil makes one.
	Metrics *metrics.Set
	// Now is the application's one clock; nil means time.Now. Tests move
	// it instead of sleeping or editing rows.
	Now func() time.Time
	// Usage sizes the usage buffers (the request log's, in bytes) and
	// sets how often they are flushed; zero values take the defaults.
	Usage usage.Options
	// Mail, when set, also mails invitation links (KEYWARD_SMTP_URL).
	Mail mail.Sender
	// SecretScanning holds the secret-scanning partner's public keys
	// (KEYWARD_SECRET_SCANNING_KEYS); nil turns the partner route off.
	SecretScanning *secretscan.KeySet
	// ReportLimit bounds the public key reports of one address; zero
	// means api.DefaultReportLimit.
	ReportLimit ratelimit.Limit
	// Webhooks configures webhook deliveries; Production turns on their
	// Strict rules whatever it says.
	Webhooks webhook.Options
}

// App is the built application.
type App struct {
	Echo     *echo.Echo
	Sessions *session.Store
	Auth     *auth.Service
	Keys     *apikey.Service
	Events   *events.Service
	MFA      *mfa.Service
	Webhooks *webhook.Service
	Verifier *apikey.Verifier
	Usage    *usage.Recorder
	Metrics  *metrics.Set
	store    *db.Store
	log      *slog.Logger
	// Audit keys the audit trail (its chain and checkpoints): the jobs and
	// the shutdown checkpoint use the same keys as the services.
	Audit *audit.Keys
}

// Start subscribes the key cache to key changes and starts the usage
// buffers' flush loops. Serve requests only after it returns.
func (a *App) Start(ctx context.Context) error {
	if err := a.Verifier.Listen(ctx, a.store.Pool, a.log); err != nil {
		return err
	}
	a.Usage.Start()
	return nil
}

// Close flushes the usage buffers, after the server has drained.
func (a *App) Close(ctx context.Context) { a.Usage.Close(ctx) }

// Build makes every service from the configuration, the store and the
// master key, and mounts them on one router. main and the tests share it, so
// tests drive exactly what production serves.
func Build(cfg Config, store *db.Store, ring *keyring.Ring) (*App, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	mfaSvc, err := mfa.New(ring.Key(keyring.PurposeTOTP), ring.Key(keyring.PurposeRecoveryCode), cfg.Issuer)
	if err != nil {
		return nil, err
	}
	mfaSvc.Now = now
	auditKeys := audit.NewKeys(ring)
	sessions := session.New(store.Queries, ring.Key(keyring.PurposeCookie), cfg.Production, now)
	authSvc := &auth.Service{Store: store, MFA: mfaSvc, Now: now, Hashes: cfg.Hashes, Audit: auditKeys, Mail: cfg.Mail}
	keys := &apikey.Service{Store: store, Auth: authSvc, Now: now, Audit: auditKeys}
	orgs := &org.Service{Store: store, Auth: authSvc, Keys: keys, Audit: auditKeys, Now: now}
	wo := cfg.Webhooks
	wo.Strict = wo.Strict || cfg.Production
	hooks, err := webhook.New(store, authSvc, auditKeys, ring.Key(keyring.PurposeWebhookSecret), ring.Key(keyring.PurposeWebhookURL), now, cfg.Logger, wo)
	if err != nil {
		return nil, err
	}
	// Every audit event, whoever writes it, is offered to the webhooks in
	// its own transaction.
	auditKeys.Subscribe(hooks)
	ph := &portal.Handler{Sessions: sessions, Auth: authSvc, Keys: keys, Org: orgs, Webhooks: hooks, Logs: &usage.Reader{Store: store}, Now: now,
		Audit: &audit.Log{Store: store}, Log: cfg.Logger, Secure: cfg.Production, BaseURL: cfg.BaseURL}
	if cfg.Limiter == nil {
		cfg.Limiter = ratelimit.NewMemory()
	}
	ver := apikey.NewVerifier(store.Queries, cfg.Verifier, cfg.Metrics)
	ver.Now = now
	uo := cfg.Usage
	uo.Audit = auditKeys
	rec := usage.New(store, cfg.Logger, now, cfg.Metrics, uo)
	evs := &events.Service{Store: store, Now: now}
	pub := &api.Handler{Events: evs, Verifier: ver, Limiter: cfg.Limiter, Usage: rec, Hosts: cfg.APIHosts, HostsStrict: cfg.APIHostsStrict, Now: now, Metrics: cfg.Metrics,
		Keys: keys, SecretScanning: cfg.SecretScanning, ReportLimit: cfg.ReportLimit}
	e := New(cfg, store, ph, pub)
	// A new session row keeps where it was opened from, as the router
	// reads the client address (trusted proxies included).
	sessions.Origin = func(r *http.Request) (string, string) { return e.IPExtractor(r), r.UserAgent() }
	return &App{Echo: e, Sessions: sessions, Auth: authSvc, Keys: keys, Events: evs, MFA: mfaSvc, Webhooks: hooks,
		Verifier: ver, Usage: rec, Metrics: cfg.Metrics, Audit: auditKeys, store: store, log: cfg.Logger}, nil
}

// New returns the application's router.
func New(cfg Config, store *db.Store, p *portal.Handler, pub *api.Handler) *echo.Echo {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.HTTPErrorHandler = errorHandler(cfg.Logger, p)
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.ReadTimeout = 30 * time.Second
	e.Server.WriteTimeout = 60 * time.Second
	e.Server.IdleTimeout = 120 * time.Second

	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// Ids carry their time, so a request pasted from an error envelope is
	// found in the request log without reading all of it.
	e.Use(ownRequestID, middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: func() string { return usage.NewRequestID(now()) },
	}))
	e.Use(requestLogger(cfg.Logger, cfg.QuietSuccess, cfg.Metrics))
	e.Use(middleware.Recover())
	e.Use(securityHeaders(cfg.Production))

	// HEAD wherever GET, as HTTP asks; echo adds no HEAD route by itself.
	// The server drops a HEAD answer's body.
	getAndHead := []string{http.MethodGet, http.MethodHead}
	e.Match(getAndHead, "/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.Match(getAndHead, "/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := store.Pool.Ping(ctx); err != nil {
			cfg.Logger.Warn("readyz: database unreachable", "err", err)
			return c.String(http.StatusServiceUnavailable, "database unreachable\n")
		}
		return c.String(http.StatusOK, "ok\n")
	})
	e.Match(getAndHead, "/static/*", echo.StaticDirectoryHandler(static.FS, !e.EnablePathUnescapingStaticFiles))
	e.Match(getAndHead, "/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{})))

	p.Register(e)
	pub.Register(e)
	return e
}

// ownRequestID drops a client's X-Request-ID so that every id in the logs
// is one the server made, and no client can write into a log line.
func ownRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Request().Header.Del(echo.HeaderXRequestID)
		return next(c)
	}
}

func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// securityHeaders sets the security headers on every response: a strict CSP with
// no inline script or style, no framing, no sniffing, and HSTS in
// production.
func securityHeaders(production bool) echo.MiddlewareFunc {
	cfg := middleware.SecureConfig{
		ContentTypeNosniff:    "nosniff",
		XFrameOptions:         "DENY",
		ContentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		ReferrerPolicy:        "same-origin",
	}
	if production {
		cfg.HSTSMaxAge = 63072000
	}
	return middleware.SecureWithConfig(cfg)
}
