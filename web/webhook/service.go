package webhook

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/errs"
)

// Endpoint is an endpoint as pages show it. It never holds the secret.
type Endpoint struct {
	ID             string
	URL            string
	Actions        []string
	Enabled        bool
	DisabledReason string
	FailingSince   *time.Time
	LastSuccessAt  *time.Time
	CreatedAt      time.Time
	// Ref is the URL as the audit trail names it.
	Ref URLRef
	// Last is the newest attempt, if any.
	Last *Attempt
}

// Attempt is one recorded delivery attempt.
type Attempt struct {
	At         time.Time
	DeliveryID string
	EventType  string
	Attempt    int
	// Status is the answer's HTTP status; 0 when none came.
	Status  int
	Error   string
	Latency time.Duration
	// Body is the first 1 KB of the answer, as text.
	Body string
}

// OK reports whether the attempt delivered (a 2xx answer).
func (a Attempt) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Input is an endpoint as the form gives it.
type Input struct {
	URL     string
	Actions []string
	// Enabled is read by Update only: a new endpoint starts enabled.
	Enabled bool
}

// Created is a new endpoint with its secret, to show once.
type Created struct {
	Endpoint Endpoint
	Secret   string
}

// ErrNoSuchEndpoint: no endpoint with that id in the caller's organisation.
var ErrNoSuchEndpoint = errs.New(errs.NotFound, "", "No such webhook endpoint in your organisation.")

func (s *Service) endpointOf(e db.WebhookEndpoint) Endpoint {
	return Endpoint{ID: e.ID, URL: e.Url, Actions: e.Actions, Enabled: e.Enabled, DisabledReason: e.DisabledReason,
		FailingSince: e.FailingSince, LastSuccessAt: e.LastSuccessAt, CreatedAt: e.CreatedAt, Ref: s.ref(e.Url)}
}

func attemptOf(a db.WebhookAttempt) Attempt {
	out := Attempt{At: a.AttemptedAt, DeliveryID: a.DeliveryID, EventType: a.EventType, Attempt: int(a.Attempt),
		Error: a.Error, Latency: time.Duration(a.LatencyMs) * time.Millisecond, Body: a.ResponseBody}
	if a.StatusCode != nil {
		out.Status = int(*a.StatusCode)
	}
	return out
}

// List returns the organisation's endpoints with their newest attempt.
func (s *Service) List(ctx context.Context, by auth.Caller) ([]Endpoint, error) {
	if by.User.Role != auth.RoleOwner {
		return nil, auth.ErrOwnerOnly(by.User.Role)
	}
	rows, err := s.store.ListWebhookEndpoints(ctx, by.Tenant.ID)
	if err != nil {
		return nil, err
	}
	last, err := s.store.ListLatestWebhookAttempts(ctx, by.Tenant.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Endpoint, len(rows))
	for i, r := range rows {
		out[i] = s.endpointOf(r)
		for _, a := range last {
			if a.EndpointID == r.ID {
				at := attemptOf(a)
				out[i].Last = &at
			}
		}
	}
	return out, nil
}

// Get returns one endpoint and its newest 50 attempts.
func (s *Service) Get(ctx context.Context, by auth.Caller, id string) (Endpoint, []Attempt, error) {
	if by.User.Role != auth.RoleOwner {
		return Endpoint{}, nil, auth.ErrOwnerOnly(by.User.Role)
	}
	if !validID(id) {
		return Endpoint{}, nil, ErrNoSuchEndpoint
	}
	r, err := s.store.GetWebhookEndpoint(ctx, db.GetWebhookEndpointParams{TenantID: by.Tenant.ID, ID: id})
	if errors.Is(err, db.ErrNotFound) {
		return Endpoint{}, nil, ErrNoSuchEndpoint
	}
	if err != nil {
		return Endpoint{}, nil, err
	}
	rows, err := s.store.ListWebhookAttempts(ctx, db.ListWebhookAttemptsParams{TenantID: by.Tenant.ID, EndpointID: id, Max: 50})
	if err != nil {
		return Endpoint{}, nil, err
	}
	atts := make([]Attempt, len(rows))
	for i, a := range rows {
		atts[i] = attemptOf(a)
	}
	e := s.endpointOf(r)
	if len(atts) > 0 {
		e.Last = &atts[0]
	}
	return e, atts, nil
}

// validID: the id is a UUID as Postgres writes it; anything else would
// make the query fail rather than find nothing.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// check reads the form's input, every field at once, before a code is
// spent; a missing code is reported with the others. The URL's host is
// resolved only when it differs from stored, the endpoint's URL as it
// is: an edit that only turns an endpoint off must work when its host no
// longer resolves.
func (s *Service) check(ctx context.Context, in Input, stored, code string) (Input, error) {
	var fs errs.Fields
	u, msg := s.guard.checkURL(ctx, in.URL, strings.TrimSpace(in.URL) != stored)
	if msg != "" {
		fs.Add("url", msg)
	}
	in.URL = u
	var actions []string
	for _, a := range Actions { // in the form's order, each once
		if slices.Contains(in.Actions, a.Name) {
			actions = append(actions, a.Name)
		}
	}
	for _, a := range in.Actions {
		if !slices.Contains(actions, a) {
			fs.Add("actions", "Choose among the listed actions.")
			break
		}
	}
	if len(in.Actions) == 0 {
		fs.Add("actions", "Choose at least one action to send.")
	}
	in.Actions = actions
	if fs.Err() != nil && strings.TrimSpace(code) == "" {
		fs.Add("code", "Enter the 6-digit code from your authenticator app, or a recovery code.")
	}
	return in, fs.Err()
}

// stillOwner checks, in the transaction, that the caller is still an
// active owner: the role read at the start of the request may have
// changed since.
func stillOwner(ctx context.Context, q *db.Queries, by auth.Caller) error {
	me, err := q.GetUser(ctx, by.User.ID)
	if err != nil {
		return err
	}
	if me.Role != auth.RoleOwner || me.DisabledAt != nil {
		return auth.ErrOwnerOnly(me.Role)
	}
	return nil
}

// lockEndpoint checks that the caller is still an owner and holds the
// endpoint's row for a change, in q's transaction.
func lockEndpoint(ctx context.Context, q *db.Queries, by auth.Caller, id string) (db.WebhookEndpoint, error) {
	if err := stillOwner(ctx, q, by); err != nil {
		return db.WebhookEndpoint{}, err
	}
	e, err := q.GetWebhookEndpointForUpdate(ctx, db.GetWebhookEndpointForUpdateParams{TenantID: by.Tenant.ID, ID: id})
	if errors.Is(err, db.ErrNotFound) {
		return e, ErrNoSuchEndpoint
	}
	return e, err
}

// URLRef is an endpoint's URL as the audit trail and flashes keep it:
// its scheme, host and port, and a fingerprint of the whole URL. Receivers
// put capability tokens in the path (Zapier, Slack, Discord) as well as in
// the query, and every member reads the trail, exports carry it and other
// endpoints receive it.
type URLRef struct {
	Origin      string `json:"origin"`
	Fingerprint string `json:"fingerprint"`
}

// String is the reference as one line, such as
// "https://hooks.zapier.com/… (fingerprint 1a2b3c4d)".
func (r URLRef) String() string {
	return r.Origin + "/… (fingerprint " + r.Fingerprint + ")"
}

// ref is raw's URLRef. The fingerprint is the first 8 hex digits of
// HMAC-SHA256 over the URL, keyed with a key of this installation's: a
// plain hash would let any member test guesses of a short token offline,
// since the rest of a receiver's URL is predictable; keyed, only the
// server can make one. 32 bits tell an organisation's few endpoints apart
// and match the owner's page, which shows it.
func (s *Service) ref(raw string) URLRef {
	r := URLRef{Fingerprint: s.fingerprint(raw)}
	if u, err := url.Parse(raw); err == nil {
		r.Origin = (&url.URL{Scheme: strings.ToLower(u.Scheme), Host: u.Host}).String()
	}
	return r
}

type change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// Create registers an endpoint, confirmed with the owner's code, and
// returns it with its secret, which is never shown again.
func (s *Service) Create(ctx context.Context, by auth.Caller, code string, in Input) (Created, error) {
	if by.User.Role != auth.RoleOwner {
		return Created{}, auth.ErrOwnerOnly(by.User.Role)
	}
	in, err := s.check(ctx, in, "", code)
	if err != nil {
		return Created{}, err
	}
	var out Created
	err = s.auth.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := stillOwner(ctx, q, by); err != nil {
			return err
		}
		if _, err := q.LockTenant(ctx, by.Tenant.ID); err != nil {
			return err
		}
		existing, err := q.ListWebhookEndpoints(ctx, by.Tenant.ID)
		if err != nil {
			return err
		}
		if len(existing) >= MaxEndpoints {
			return errs.New(errs.Conflict, "", "Your organisation has "+strconv.Itoa(MaxEndpoints)+" webhook endpoints, the most it may have: delete one first.")
		}
		secret, key := NewSecret()
		id := newID()
		row, err := q.CreateWebhookEndpoint(ctx, db.CreateWebhookEndpointParams{ID: id, TenantID: by.Tenant.ID, Url: in.URL,
			Actions: in.Actions, SecretSealed: s.seal(id, key), Now: now})
		if err != nil {
			return err
		}
		out = Created{Endpoint: s.endpointOf(row), Secret: secret}
		return audit.Record(ctx, q, s.audit, now, by.Actor().Event(ActionCreated, "webhook_endpoint", id,
			map[string]any{"url": change{nil, s.ref(in.URL)}, "actions": change{nil, in.Actions}}))
	})
	return out, err
}

// Update changes an endpoint's URL, actions and state, confirmed with the
// owner's code. Turning it off is recorded as webhook.disabled, and its
// pending deliveries are cancelled; any other change as webhook.updated.
// Turning it on again, or changing its URL, starts its failure clock
// afresh.
func (s *Service) Update(ctx context.Context, by auth.Caller, code, id string, in Input) (Endpoint, error) {
	if by.User.Role != auth.RoleOwner {
		return Endpoint{}, auth.ErrOwnerOnly(by.User.Role)
	}
	if !validID(id) {
		return Endpoint{}, ErrNoSuchEndpoint
	}
	stored, err := s.store.GetWebhookEndpoint(ctx, db.GetWebhookEndpointParams{TenantID: by.Tenant.ID, ID: id})
	if errors.Is(err, db.ErrNotFound) {
		return Endpoint{}, ErrNoSuchEndpoint
	} else if err != nil {
		return Endpoint{}, err
	}
	in, err = s.check(ctx, in, stored.Url, code)
	if err != nil {
		return Endpoint{}, err
	}
	var out Endpoint
	err = s.auth.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		old, err := lockEndpoint(ctx, q, by, id)
		if err != nil {
			return err
		}
		diff := map[string]any{}
		if old.Url != in.URL {
			diff["url"] = change{s.ref(old.Url), s.ref(in.URL)}
		}
		if !slices.Equal(old.Actions, in.Actions) {
			diff["actions"] = change{old.Actions, in.Actions}
		}
		if old.Enabled != in.Enabled {
			diff["disabled"] = change{!old.Enabled, !in.Enabled}
		}
		if len(diff) == 0 {
			return errs.New(errs.Invalid, "", "Nothing changed: the endpoint is as it was.")
		}
		reason, action := "", ActionUpdated
		if !in.Enabled {
			reason = old.DisabledReason
			if old.Enabled {
				reason, action = "Disabled by "+by.User.Email+".", ActionDisabled
				diff["reason"] = "owner"
			}
		}
		row, err := q.UpdateWebhookEndpoint(ctx, db.UpdateWebhookEndpointParams{TenantID: by.Tenant.ID, ID: id, Url: in.URL,
			Actions: in.Actions, Enabled: in.Enabled, DisabledReason: reason, Now: now})
		if err != nil {
			return err
		}
		if action == ActionDisabled {
			if err := s.cancelPending(ctx, q, id); err != nil {
				return err
			}
		}
		out = s.endpointOf(row)
		return audit.Record(ctx, q, s.audit, now, by.Actor().Event(action, "webhook_endpoint", id, diff))
	})
	return out, err
}

// Delete removes an endpoint, its attempts and its pending deliveries,
// confirmed with the owner's code.
func (s *Service) Delete(ctx context.Context, by auth.Caller, code, id string) (Endpoint, error) {
	if by.User.Role != auth.RoleOwner {
		return Endpoint{}, auth.ErrOwnerOnly(by.User.Role)
	}
	if !validID(id) {
		return Endpoint{}, ErrNoSuchEndpoint
	}
	var out Endpoint
	err := s.auth.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		old, err := lockEndpoint(ctx, q, by, id)
		if err != nil {
			return err
		}
		if err := s.cancelPending(ctx, q, id); err != nil {
			return err
		}
		if _, err := q.DeleteWebhookEndpoint(ctx, db.DeleteWebhookEndpointParams{TenantID: by.Tenant.ID, ID: id}); err != nil {
			return err
		}
		out = s.endpointOf(old)
		return audit.Record(ctx, q, s.audit, now, by.Actor().Event(ActionDeleted, "webhook_endpoint", id,
			map[string]any{"url": s.ref(old.Url), "actions": old.Actions}))
	})
	return out, err
}

// SendTest queues a test event to the endpoint, enabled or not: one
// attempt, recorded like any other, that leaves the endpoint's failure
// count alone. It needs no code and is not audited: it changes nothing,
// and what it sends holds no data of the organisation (its type, the
// time, the endpoint's id), so it says no more than the owner already
// knows; its attempt is on the endpoint's page.
//
// Deliveries of every organisation share a few workers, so tests are
// bounded: one waiting or running per endpoint at a time, and
// TestsPerMinute a minute.
func (s *Service) SendTest(ctx context.Context, by auth.Caller, id string) error {
	if by.User.Role != auth.RoleOwner {
		return auth.ErrOwnerOnly(by.User.Role)
	}
	if !validID(id) {
		return ErrNoSuchEndpoint
	}
	return s.store.InTx(ctx, func(q *db.Queries) error {
		// The row lock makes two clicks at once take turns.
		e, err := q.GetWebhookEndpointForUpdate(ctx, db.GetWebhookEndpointForUpdateParams{TenantID: by.Tenant.ID, ID: id})
		if errors.Is(err, db.ErrNotFound) {
			return ErrNoSuchEndpoint
		}
		if err != nil {
			return err
		}
		if err := s.testAllowed(ctx, q, e.ID); err != nil {
			return err
		}
		now := s.now().UTC()
		body, err := marshalBody(TestType, now, map[string]any{
			"endpoint_id": e.ID, "message": "A test event from Keyward: your endpoint receives and verifies webhooks.",
		})
		if err != nil {
			return err
		}
		return s.enqueue(ctx, q, []DeliveryArgs{{EndpointID: e.ID, TenantID: e.TenantID, DeliveryID: newDeliveryID(),
			Type: TestType, Body: string(body), Test: true}})
	})
}

// testAllowed refuses a test event while another to the endpoint waits or
// runs, or when TestsPerMinute were queued in the last minute (by the
// database's clock, which River's created_at is on).
func (s *Service) testAllowed(ctx context.Context, q *db.Queries, endpointID string) error {
	tx, ok := q.Tx()
	if !ok {
		return errors.New("webhook: checking test events outside a transaction")
	}
	mine := river.NamedArgs{"endpoint": endpointID}
	const isTest = "args->>'endpoint_id' = @endpoint AND args->>'test' = 'true'"
	res, err := s.river.JobListTx(ctx, tx, river.NewJobListParams().Kinds(DeliveryArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending, rivertype.JobStateRunning).
		Where(isTest, mine).First(1))
	if err != nil {
		return err
	}
	if len(res.Jobs) > 0 {
		return errs.New(errs.Conflict, "", "A test event to this endpoint is on its way already: wait for its attempt to appear below, then send another.")
	}
	res, err = s.river.JobListTx(ctx, tx, river.NewJobListParams().Kinds(DeliveryArgs{}.Kind()).
		Where(isTest+" AND created_at > now() - interval '1 minute'", mine).First(TestsPerMinute))
	if err != nil {
		return err
	}
	if len(res.Jobs) >= TestsPerMinute {
		return errs.Throttle("At most "+strconv.Itoa(TestsPerMinute)+" test events a minute go to one endpoint", time.Minute)
	}
	return nil
}

// cancelPending cancels the endpoint's deliveries that wait for a first
// or next attempt, in q's transaction. One running now finds the endpoint
// gone or disabled when it locks the row to record its attempt: it
// records nothing and is cancelled (Deliver).
func (s *Service) cancelPending(ctx context.Context, q *db.Queries, endpointID string) error {
	tx, ok := q.Tx()
	if !ok {
		return errors.New("webhook: cancelling deliveries outside a transaction")
	}
	for {
		res, err := s.river.JobListTx(ctx, tx, river.NewJobListParams().Kinds(DeliveryArgs{}.Kind()).
			States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending).
			Where("args->>'endpoint_id' = @endpoint", river.NamedArgs{"endpoint": endpointID}).First(500))
		if err != nil {
			return err
		}
		for _, j := range res.Jobs {
			if _, err := s.river.JobCancelTx(ctx, tx, j.ID); err != nil {
				return err
			}
		}
		if len(res.Jobs) < 500 {
			return nil
		}
	}
}
