// Package webhook owns webhook alerts: an organisation's endpoints (URL,
// the audit actions they subscribe to, a signing secret kept sealed), the
// delivery of its audit events to them, signed per the Standard Webhooks
// convention, the record of every attempt, and the rules that keep
// deliveries away from the server's own networks (ssrf.go).
//
// Deliveries are River jobs (kind webhook_delivery, queue webhooks),
// enqueued by EventRecorded in the very transaction that writes the audit
// event: Service is an audit.Subscriber installed on the audit keys, so
// every event any code records reaches the subscribed endpoints, and an
// event whose transaction rolls back sends nothing. The River worker
// (web/jobs) calls Deliver. It must not import echo.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
)

// Actions an endpoint may subscribe to, in the order the form offers
// them, with what each means.
var Actions = []Action{
	{"api_key.created", "a key was created"},
	{"api_key.updated", "a key's settings changed"},
	{"api_key.rotated", "a key's secret was rotated"},
	{"api_key.disabled", "a key was disabled"},
	{"api_key.enabled", "a key was enabled again"},
	{"api_key.revoked", "a key was revoked"},
	{"api_key.expired", "a key reached its expiry"},
	{"api_key.expiring", "a key expires in 14 days, or in 1 day"},
	{"api_key.leaked", "a key was found in public, and handled by policy"},
	{"api_key.used_from_new_ip", "a key was used from an address it never used before"},
	{"user.invited", "a member was invited"},
	{"user.created", "a member joined"},
	{"user.role_changed", "a member's role changed"},
	{"user.disabled", "a member was disabled"},
	{"user.enabled", "a member was enabled again"},
	{"user.mfa_reset", "a member's authenticator was reset"},
	{"webhook.created", "a webhook endpoint was registered"},
	{"webhook.updated", "a webhook endpoint was changed"},
	{"webhook.disabled", "a webhook endpoint was disabled"},
	{"webhook.deleted", "a webhook endpoint was deleted"},
	{audit.ActionCheckpoint, "a signed checkpoint of the organisation's audit chain (every five minutes while it changes)"},
}

// Action is an action endpoints may subscribe to.
type Action struct{ Name, What string }

// Audit actions of the endpoints themselves.
const (
	ActionCreated  = "webhook.created"
	ActionUpdated  = "webhook.updated"
	ActionDisabled = "webhook.disabled"
	ActionDeleted  = "webhook.deleted"
)

// TestType is the type of the test event an owner sends from the page.
const TestType = "webhook.test"

// Tunables.
const (
	// Queue is the River queue deliveries run on, apart from the
	// periodic jobs, so a slow receiver never holds those up.
	Queue = "webhooks"
	// MaxAttempts bounds a delivery's attempts. River waits attempt⁴
	// seconds (plus jitter) between them, so attempts go on for weeks;
	// an endpoint that fails for DisableAfter is disabled long before.
	MaxAttempts = 25
	// DisableAfter: an endpoint whose deliveries have all failed for this
	// long since the first failure (with no success since) is disabled.
	DisableAfter = 72 * time.Hour
	// AttemptTimeout bounds one attempt, connection and answer included.
	AttemptTimeout = 10 * time.Second
	// HeaderTimeout bounds the wait for the answer's headers once the
	// request is sent: a receiver that holds every delivery open frees
	// the shared workers sooner.
	HeaderTimeout = 5 * time.Second
	// Workers is how many deliveries run at once on each server, across
	// every organisation. They mostly wait on the network.
	Workers = 10
	// TestsPerMinute bounds the test events sent to one endpoint.
	TestsPerMinute = 5
	// ResponseKept is how much of an answer's body an attempt keeps.
	ResponseKept = 1024
	// MaxEndpoints an organisation may register.
	MaxEndpoints = 20
	// AttemptsKept is how long attempts are kept (DeleteOldAttempts).
	AttemptsKept = 30 * 24 * time.Hour
)

// Options configure deliveries.
type Options struct {
	// Strict applies the address rules (ssrf.go) and allows only https
	// URLs. Production mode turns it on.
	Strict bool
	// Allow lists networks deliveries may reach whatever the rules say
	// (KEYWARD_WEBHOOK_ALLOW_NETWORKS).
	Allow []netip.Prefix
	// RootCAs are the certificate authorities deliveries trust; nil means
	// the system's. Tests trust their own TLS receiver.
	RootCAs *x509.CertPool
}

// Service manages endpoints and delivers to them.
type Service struct {
	store  *db.Store
	auth   *auth.Service
	audit  *audit.Keys
	now    func() time.Time
	log    *slog.Logger
	sealer *keyring.Sealer
	// fpKey keys the URLs' fingerprints (ref).
	fpKey  []byte
	guard  guard
	client *http.Client
	*Enqueuer
}

// Enqueuer enqueues the deliveries of recorded events (EventRecorded). The
// Service has one; the command line installs one of its own on its audit
// keys, so the events its commands write reach the endpoints too.
type Enqueuer struct {
	// river only inserts and cancels jobs, in the caller's transaction;
	// the application's River client (web/jobs) works them.
	river *river.Client[pgx.Tx]
}

// NewEnqueuer makes an Enqueuer. It needs no pool: it works in its
// callers' transactions only.
func NewEnqueuer(log *slog.Logger) (*Enqueuer, error) {
	rc, err := river.NewClient(riverpgxv5.New(nil), &river.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Enqueuer{river: rc}, nil
}

// New builds the service. sealKey (keyring.PurposeWebhookSecret) seals
// the endpoints' secrets; urlKey (keyring.PurposeWebhookURL) keys the
// fingerprints that name their URLs in the audit trail.
func New(store *db.Store, authSvc *auth.Service, keys *audit.Keys, sealKey, urlKey []byte, now func() time.Time, log *slog.Logger, o Options) (*Service, error) {
	sealer, err := keyring.NewSealer(sealKey)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	enq, err := NewEnqueuer(log)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	s := &Service{store: store, auth: authSvc, audit: keys, now: now, log: log, sealer: sealer, fpKey: urlKey,
		guard: guard{strict: o.Strict, allow: o.Allow, logger: log}, Enqueuer: enq}
	dialer := &net.Dialer{Timeout: AttemptTimeout, Control: s.guard.dialControl}
	s.client = &http.Client{
		Timeout: AttemptTimeout,
		Transport: &http.Transport{
			// No proxy: the address checked must be the receiver's.
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   HeaderTimeout,
			ResponseHeaderTimeout: HeaderTimeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		},
		// A redirect is not followed: it could lead anywhere, a private
		// address included. The attempt fails with the 3xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// NewSecret makes a signing secret in the Standard Webhooks form:
// "whsec_" and the standard base64 of 32 random bytes, which are the HMAC
// key.
func NewSecret() (string, []byte) {
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// Sign is the webhook-signature header of a delivery: "v1," and the
// standard base64 of HMAC-SHA256, keyed with the secret's bytes, over
// "{id}.{timestamp}.{body}".
func Sign(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// seal encrypts an endpoint's key, bound to its id: a sealed secret
// copied onto another endpoint's row does not open.
func (s *Service) seal(endpointID string, key []byte) []byte {
	return s.sealer.Seal(key, []byte("webhook endpoint "+endpointID))
}

func (s *Service) open(e db.WebhookEndpoint) ([]byte, error) {
	key, err := s.sealer.Open(e.SecretSealed, []byte("webhook endpoint "+e.ID))
	if err != nil {
		return nil, fmt.Errorf("webhook: the endpoint's secret does not open (was KEYWARD_SECRET_KEY changed?): %w", err)
	}
	return key, nil
}

// fingerprint is the first 8 hex digits of HMAC-SHA256 of raw under
// fpKey (see ref).
func (s *Service) fingerprint(raw string) string {
	m := hmac.New(sha256.New, s.fpKey)
	m.Write([]byte(raw))
	return hex.EncodeToString(m.Sum(nil))[:8]
}

// newID is a random UUID (version 4).
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newDeliveryID is a delivery's webhook-id: "msg_" and 128 random bits.
// Receivers use it to drop a delivery they already handled.
func newDeliveryID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}
