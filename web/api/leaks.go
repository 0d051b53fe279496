package api

// The two routes that take reports of leaked keys. Neither takes an API
// key: a secret-scanning partner signs its reports (web/secretscan checks
// the signature), and anyone may send the public report. Both hand each
// token to the key service, which applies the key's organisation's leak
// policy (web/apikey/leak.go).

import (
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/errs"
	"keyward/web/problem"
	"keyward/web/ratelimit"
	"keyward/web/secretscan"
)

// The actors the audit trail names for each kind of report.
const (
	ActorSecretScanning = "secret-scanning"
	ActorPublicReport   = "public-report"
)

// DefaultReportLimit is how many public key reports one address (an IPv6
// /64) may send: each may name 100 keys, and each well-formed key costs a
// lookup.
var DefaultReportLimit = ratelimit.Limit{Requests: 10, Window: time.Hour}

// SignatureFailureLimit is how many partner reports one address (an IPv6
// /64) may have refused for their signature headers or signature before
// its reports are refused unread, with 429. The partner fails none; each
// failure costs a signature check, and some a body of up to 1 MiB.
var SignatureFailureLimit = ratelimit.Limit{Requests: 10, Window: time.Hour}

// errScanningOff answers partner reports on a server with no partner keys
// (KEYWARD_SECRET_SCANNING_KEYS unset): the route is off.
var errScanningOff = errs.New(errs.NotFound, "",
	"Secret-scanning reports are not enabled on this server: its operator has not configured the partner's public keys.")

func reporter(c echo.Context, id string) audit.Actor {
	return audit.Actor{Type: audit.ActorSystem, ID: id, IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
}

// scanningGate refuses a partner report before its body is read: the
// route off, the address's signature failures used up, or the signature
// headers missing or naming a key the server does not hold. Each refusal
// of the headers counts as a failure.
func (h *Handler) scanningGate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.SecretScanning == nil {
			return errScanningOff
		}
		client := "secret-scanning:" + apikey.ClientOf(c.RealIP())
		if retry, out := h.signFailures.Exhausted(client, SignatureFailureLimit); out {
			return errs.Throttle("Too many partner reports with a bad signature from your address", retry)
		}
		hd := c.Request().Header
		if err := h.SecretScanning.Check(hd.Get(secretscan.HeaderKeyIdentifier), hd.Get(secretscan.HeaderKeySignature)); err != nil {
			h.signFailures.Allow(c.Request().Context(), client, SignatureFailureLimit)
			return err
		}
		return next(c)
	}
}

// handleSecretScanning takes a partner report that passed scanningGate:
// the signature over the raw body (401 and nothing done when it fails,
// counted as a failure), then the body, then the key service handles its
// tokens. The answer is the partner program's own: one label per token,
// named by its SHA-256.
func (h *Handler) handleSecretScanning(c echo.Context) error {
	r := c.Request()
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := h.SecretScanning.Verify(r.Header.Get(secretscan.HeaderKeyIdentifier), r.Header.Get(secretscan.HeaderKeySignature), body); err != nil {
		h.signFailures.Allow(r.Context(), "secret-scanning:"+apikey.ClientOf(c.RealIP()), SignatureFailureLimit)
		return err
	}
	matches, err := secretscan.ParseReport(body)
	if err != nil {
		return err
	}
	rep := apikey.Report{Source: apikey.SourceSecretScanning, Tokens: make([]apikey.Reported, len(matches))}
	for i, m := range matches {
		rep.Tokens[i] = apikey.Reported{Token: m.Token, URL: m.URL, Where: m.Source}
	}
	outs, err := h.Keys.HandleReport(r.Context(), rep, reporter(c, ActorSecretScanning))
	if err != nil {
		return err
	}
	labels := make([]secretscan.Label, len(matches))
	for i, m := range matches {
		// A revoked key is still a real token: GitHub's label says whether
		// the match is a real credential, not whether it still works.
		labels[i] = secretscan.LabelFor(m, outs[i] != apikey.LeakNotOurs)
	}
	noStore(c)
	return c.JSON(http.StatusOK, labels)
}

// reportAccepted is the public report's one answer, the same bytes
// whatever the keys were.
var reportAccepted = []byte(`{"success":true,"data":{"status":"received","message":"Thank you. Every live key among those reported is now handled by its organisation's leak policy."}}`)

// handleKeyReport takes a public report of leaked keys. It answers 202
// with the same body whether or not any key existed; only a malformed
// request or the address's limit is refused.
func (h *Handler) handleKeyReport(c echo.Context) error {
	r := c.Request()
	limit := h.ReportLimit
	if limit.Requests <= 0 {
		limit = DefaultReportLimit
	}
	if res := h.Limiter.Allow(r.Context(), "key-report:"+apikey.ClientOf(c.RealIP()), limit); !res.Allowed {
		return errs.Throttle("Too many key reports from your address", res.RetryAfter)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return problem.Unsupported()
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	pub, err := secretscan.ParsePublicReport(body)
	if err != nil {
		return err
	}
	rep := apikey.Report{Source: apikey.SourcePublicReport, Tokens: make([]apikey.Reported, len(pub.Keys)), Note: pub.Note}
	for i, k := range pub.Keys {
		rep.Tokens[i] = apikey.Reported{Token: k, URL: pub.URL}
	}
	if _, err := h.Keys.HandleReport(r.Context(), rep, reporter(c, ActorPublicReport)); err != nil {
		return err
	}
	noStore(c)
	return c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, reportAccepted)
}
