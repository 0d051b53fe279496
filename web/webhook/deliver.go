package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"keyward/db"
	"keyward/web/audit"
)

// DeliveryArgs is one delivery of one event to one endpoint: a River job.
// The body is made when the event is written, so every attempt sends the
// same bytes under the same webhook-id.
type DeliveryArgs struct {
	EndpointID string `json:"endpoint_id"`
	TenantID   int64  `json:"tenant_id"`
	// DeliveryID is the webhook-id header.
	DeliveryID string `json:"delivery_id"`
	Type       string `json:"type"`
	// Body is the JSON body, kept as a string: as JSON inside the job's
	// arguments (jsonb) Postgres would reorder its keys.
	Body string `json:"body"`
	// Test marks an owner's test event: it is sent to a disabled endpoint
	// too, once, and leaves the endpoint's failure count alone.
	Test bool `json:"test,omitempty"`
}

// Kind names the job in River's tables.
func (DeliveryArgs) Kind() string { return "webhook_delivery" }

// InsertOpts puts deliveries on their own queue.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts}
}

// Payload is a delivery's JSON body, as Standard Webhooks shapes it.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// EventData is what a delivery of an audit event tells: the event's
// tenant-visible fields and its place in the chain, so a receiver can
// check it against an export or a checkpoint. Events hold no secrets.
type EventData struct {
	Action     string          `json:"action"`
	Actor      Ref             `json:"actor"`
	Target     Ref             `json:"target"`
	IP         string          `json:"ip"`
	OccurredAt time.Time       `json:"occurred_at"`
	Diff       json.RawMessage `json:"diff"`
	Chain      ChainRef        `json:"chain"`
}

// Ref names an actor or a target.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// ChainRef is an event's place in its audit chain; Hash is standard
// base64.
type ChainRef struct {
	ID   int64  `json:"id"`
	Seq  int64  `json:"seq"`
	Hash []byte `json:"hash"`
}

func marshalBody(typ string, at time.Time, data any) ([]byte, error) {
	return json.Marshal(Payload{Type: typ, Timestamp: at.UTC(), Data: data})
}

// EventRecorded enqueues one delivery of ev for each of its tenant's
// enabled endpoints that subscribe to its action, in q's transaction
// (audit.Subscriber). Events of no tenant (chain 0) and actions no
// endpoint may subscribe to (sign-ins, say) cost nothing; the others one
// indexed query, and enqueue nothing when no endpoint subscribes.
func (s *Enqueuer) EventRecorded(ctx context.Context, q *db.Queries, ev db.AuditEvent) error {
	if ev.TenantID == nil || !subscribable[ev.Action] {
		return nil
	}
	ids, err := q.ListSubscribedWebhookEndpoints(ctx, db.ListSubscribedWebhookEndpointsParams{TenantID: *ev.TenantID, Action: ev.Action})
	if err != nil || len(ids) == 0 {
		return err
	}
	body, err := marshalBody(ev.Action, ev.OccurredAt, EventData{
		Action: ev.Action, Actor: Ref{ev.ActorType, ev.ActorID}, Target: Ref{ev.TargetType, ev.TargetID},
		IP: ev.Ip, OccurredAt: ev.OccurredAt.UTC(), Diff: json.RawMessage(ev.Diff),
		Chain: ChainRef{ID: ev.ChainID, Seq: ev.Seq, Hash: ev.Hash},
	})
	if err != nil {
		return err
	}
	jobs := make([]DeliveryArgs, len(ids))
	for i, id := range ids {
		jobs[i] = DeliveryArgs{EndpointID: id, TenantID: *ev.TenantID, DeliveryID: newDeliveryID(), Type: ev.Action, Body: string(body)}
	}
	return s.enqueue(ctx, q, jobs)
}

// subscribable holds the names of Actions.
var subscribable = func() map[string]bool {
	m := make(map[string]bool, len(Actions))
	for _, a := range Actions {
		m[a.Name] = true
	}
	return m
}()

// enqueue inserts deliveries in q's transaction.
func (s *Enqueuer) enqueue(ctx context.Context, q *db.Queries, jobs []DeliveryArgs) error {
	tx, ok := q.Tx()
	if !ok {
		return errors.New("webhook: an event to deliver was recorded outside a transaction")
	}
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		var opts *river.InsertOpts
		if j.Test {
			opts = &river.InsertOpts{MaxAttempts: 1}
		}
		params[i] = river.InsertManyParams{Args: j, InsertOpts: opts}
	}
	if _, err := s.river.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("webhook: enqueueing deliveries: %w", err)
	}
	return nil
}

// outcome is what one attempt came to.
type outcome struct {
	status  int // 0: no answer
	err     error
	latency time.Duration
	body    string
}

// Deliver makes one attempt of a delivery (the River worker's work) and
// records it in a transaction of its own, so a failed attempt is kept.
// A 2xx answer completes the delivery; anything else (another status, a
// redirect, a timeout, a refused address) fails the attempt, for River to
// retry with backoff. When the endpoint has failed for DisableAfter with
// no success, this attempt disables it (audited as webhook.disabled, by
// the system) and cancels its pending deliveries. A delivery whose
// endpoint is gone or disabled, before the attempt or by the time it is
// recorded, is cancelled and records nothing; one whose endpoint's URL
// changed during the attempt records nothing and is tried again, at the
// new URL. A secret that no longer opens fails the delivery for good,
// with an attempt that says so.
func (s *Service) Deliver(ctx context.Context, a DeliveryArgs, jobID int64, attempt int) error {
	e, err := s.store.GetWebhookEndpointForDelivery(ctx, db.GetWebhookEndpointForDeliveryParams{TenantID: a.TenantID, ID: a.EndpointID})
	if errors.Is(err, db.ErrNotFound) {
		return river.JobCancel(errors.New("the webhook endpoint was deleted"))
	}
	if err != nil {
		return err
	}
	if !e.Enabled && !a.Test {
		return river.JobCancel(errors.New("the webhook endpoint is disabled"))
	}
	at := s.now()
	key, err := s.open(e)
	var out outcome
	if err != nil {
		s.log.Error("webhook secret does not open", "endpoint", e.ID, "err", err)
		out = outcome{err: errSecretUnreadable}
	} else {
		out = s.send(ctx, e.Url, a, key, at)
	}
	var disabled bool
	var stale staleness
	err = s.store.InTx(ctx, func(q *db.Queries) error {
		disabled, stale = false, fresh
		var status *int32
		if out.status != 0 {
			st := int32(out.status)
			status = &st
		}
		msg := ""
		if out.err != nil {
			msg = audit.CleanText(out.err.Error(), 500)
		}
		now, err := q.LockWebhookEndpointForDelivery(ctx, db.LockWebhookEndpointForDeliveryParams{TenantID: e.TenantID, ID: e.ID})
		if errors.Is(err, db.ErrNotFound) || err == nil && !now.Enabled && !a.Test {
			stale = staleGone // deleted or disabled meanwhile: its pending deliveries were cancelled
			return nil
		} else if err != nil {
			return err
		}
		if now.Url != e.Url {
			stale = staleURL
			return nil
		}
		err = q.InsertWebhookAttempt(ctx, db.InsertWebhookAttemptParams{TenantID: e.TenantID, EndpointID: e.ID,
			DeliveryID: a.DeliveryID, JobID: jobID, Attempt: int32(attempt), EventType: a.Type, AttemptedAt: at,
			StatusCode: status, Error: msg, LatencyMs: int32(out.latency.Milliseconds()), ResponseBody: out.body})
		if err != nil || a.Test {
			return err
		}
		if out.err == nil {
			return q.MarkWebhookSuccess(ctx, db.MarkWebhookSuccessParams{TenantID: e.TenantID, ID: e.ID, Now: at})
		}
		since, err := q.MarkWebhookFailure(ctx, db.MarkWebhookFailureParams{TenantID: e.TenantID, ID: e.ID, Now: at})
		if errors.Is(err, db.ErrNotFound) || err == nil && (since == nil || at.Sub(*since) < DisableAfter) {
			return nil
		}
		if err != nil {
			return err
		}
		reason := fmt.Sprintf("Disabled by Keyward on %s: every delivery failed since %s (3 days or more).",
			at.UTC().Format("2006-01-02 15:04 UTC"), since.UTC().Format("2006-01-02 15:04 UTC"))
		if _, err := q.DisableFailingWebhook(ctx, db.DisableFailingWebhookParams{TenantID: e.TenantID, ID: e.ID, DisabledReason: reason, Now: at}); errors.Is(err, db.ErrNotFound) {
			return nil // disabled already
		} else if err != nil {
			return err
		}
		if err := s.cancelPending(ctx, q, e.ID); err != nil {
			return err
		}
		disabled = true
		return audit.Record(ctx, q, s.audit, at, audit.Event{TenantID: &e.TenantID, ActorType: audit.ActorSystem,
			Action: ActionDisabled, TargetType: "webhook_endpoint", TargetID: e.ID,
			Diff: map[string]any{"disabled": change{false, true}, "reason": "failing", "failing_since": since.UTC()}})
	})
	if err != nil {
		return fmt.Errorf("recording a webhook attempt: %w", err)
	}
	switch stale {
	case staleGone:
		return river.JobCancel(errors.New("the webhook endpoint was deleted or disabled during the attempt"))
	case staleURL:
		return errors.New("the webhook endpoint's URL changed during the attempt: the next goes to the new one")
	}
	if out.err == nil {
		return nil
	}
	var blocked *BlockedError
	if errors.As(out.err, &blocked) {
		s.log.Warn("webhook attempt failed", "endpoint", e.ID, "delivery", a.DeliveryID, "attempt", attempt, "err", out.err, "detail", blocked.Detail())
	} else {
		s.log.Warn("webhook attempt failed", "endpoint", e.ID, "delivery", a.DeliveryID, "attempt", attempt, "status", out.status, "err", out.err)
	}
	if disabled {
		s.log.Warn("webhook endpoint disabled: its deliveries failed for 3 days", "endpoint", e.ID, "tenant", e.TenantID)
		return river.JobCancel(out.err)
	}
	if a.Test || errors.Is(out.err, errSecretUnreadable) {
		return river.JobCancel(out.err) // a test is sent once; a secret that does not open will not later
	}
	return out.err
}

// staleness is whether the endpoint changed during an attempt so that the
// attempt no longer counts.
type staleness int

const (
	fresh     staleness = iota
	staleGone           // deleted, or disabled
	staleURL            // sent to the URL it had
)

// errSecretUnreadable is the attempt's error when the endpoint's sealed
// secret does not open: nothing can be signed until it is registered
// again.
var errSecretUnreadable = errors.New("the signing secret cannot be read: was KEYWARD_SECRET_KEY changed? Delete the endpoint and register it again")

// DeleteOldAttempts deletes the attempts older than AttemptsKept, in every
// organisation, and returns how many: the cleanup job's work.
func DeleteOldAttempts(ctx context.Context, store *db.Store, now time.Time) (int64, error) {
	return store.DeleteOldWebhookAttempts(ctx, now.Add(-AttemptsKept))
}

// send makes one signed POST of the delivery to rawURL.
func (s *Service) send(ctx context.Context, rawURL string, a DeliveryArgs, key []byte, at time.Time) outcome {
	u, err := url.Parse(rawURL)
	if err != nil {
		return outcome{err: fmt.Errorf("the endpoint's URL cannot be read: %w", err)}
	}
	if msg := s.guard.checkScheme(u); msg != "" {
		return outcome{err: errors.New(msg)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(a.Body))
	if err != nil {
		return outcome{err: err}
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Keyward-Webhooks/1")
	req.Header.Set("webhook-id", a.DeliveryID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", Sign(key, a.DeliveryID, ts, []byte(a.Body)))
	start := time.Now()
	res, err := s.client.Do(req)
	if err != nil {
		return outcome{err: unwrapURLError(err), latency: time.Since(start)}
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, ResponseKept))
	res.Body.Close()
	out := outcome{status: res.StatusCode, latency: time.Since(start), body: audit.CleanText(string(b), ResponseKept)}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 300 && res.StatusCode < 400:
		out.err = fmt.Errorf("answered %d, a redirect, which is not followed (to %q)", res.StatusCode, audit.CleanText(res.Header.Get("Location"), 200))
	default:
		out.err = fmt.Errorf("answered %d", res.StatusCode)
	}
	return out
}

// unwrapURLError drops the method and URL *url.Error puts in front: the
// page shows the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer within %s", AttemptTimeout)
		}
		return ue.Err
	}
	return err
}
