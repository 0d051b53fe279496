package apikey

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"keyward/db"
	"keyward/web/auth"
	"keyward/web/errs"
	"keyward/web/metrics"
	"keyward/web/ratelimit"
)

// Verification errors. Each is one row of docs/api.md's check table;
// the errors VerifyFrom returns wrap them with a message that names the
// key's own times.
var (
	// ErrInvalid: malformed, bad checksum, or no such key.
	ErrInvalid = errs.New(errs.Unauthorized, errs.CodeUnauthorized, "Invalid API key")
	// ErrUnknown is the ErrInvalid of a well-formed key that does not
	// exist: it cost a lookup, where a malformed key cost nothing.
	ErrUnknown = fmt.Errorf("%w (well formed, unknown)", ErrInvalid)
	// ErrDisabled: the key is disabled.
	ErrDisabled = errs.New(errs.Unauthorized, errs.CodeKeyDisabled, "This API key is disabled: a tenant admin can enable it again.")
	// ErrExpired: the key's expiry has passed.
	ErrExpired = errs.New(errs.Unauthorized, errs.CodeKeyExpired, "This API key expired.")
	// ErrRotated: this secret was rotated out and its grace window ended.
	ErrRotated = errs.New(errs.Unauthorized, errs.CodeKeyExpired, "This key was rotated and its grace period ended: use the new key.")
	// ErrRevokedKey: the key is revoked.
	ErrRevokedKey = errs.New(errs.Unauthorized, errs.CodeKeyRevoked, "This API key was revoked and can never be used again.")
	// ErrLookupsExhausted: the client made too many lookups of unknown keys.
	ErrLookupsExhausted = errs.New(errs.Throttled, errs.CodeRateLimited, "Too many keys had to be looked up.")
)

// refusal is sentinel with a message that says when.
func refusal(sentinel *errs.Error, msg string) *errs.Error {
	return &errs.Error{Kind: sentinel.Kind, Code: sentinel.Code, Message: msg, Err: sentinel}
}

// Principal is a stored key as the public API sees it, read once and then
// served from the cache. It is never changed after it is built.
type Principal struct {
	KeyID       string
	Name        string
	Prefix      string
	TenantID    int64
	TenantSlug  string
	Plan        string
	Environment Environment
	Scopes      []string
	// Sources the key may use; empty means any.
	Sources []string
	// IPAllowlist; empty means any address.
	IPAllowlist []netip.Prefix
	// RateLimit is the effective limit; KeyOverride tells whether the key
	// sets it or the plan does.
	RateLimit   RateLimit
	KeyOverride bool
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	DisabledAt  *time.Time
	RevokedAt   *time.Time
	// ChangedAt is the key row's changed_at when it was read: a catch-up
	// keeps a cached principal that is at least that recent.
	ChangedAt time.Time
	// SecretExpiresAt is when the presented secret stops working (a
	// rotation's grace window), nil while it is current.
	SecretExpiresAt *time.Time
}

// Check applies the status rules at now, revocation first.
func (p *Principal) Check(now time.Time) error {
	at := func(t *time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case p.RevokedAt != nil:
		return refusal(ErrRevokedKey, "This API key was revoked at "+at(p.RevokedAt)+" and can never be used again.")
	case p.DisabledAt != nil:
		return ErrDisabled
	case p.ExpiresAt != nil && !p.ExpiresAt.After(now):
		return refusal(ErrExpired, "This API key expired at "+at(p.ExpiresAt)+".")
	case p.SecretExpiresAt != nil && !p.SecretExpiresAt.After(now):
		return refusal(ErrRotated, "This key was rotated and its grace period ended at "+at(p.SecretExpiresAt)+": use the new key.")
	}
	return nil
}

// HasScope reports whether the key holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// AllowsSource reports whether the key may use source.
func (p *Principal) AllowsSource(source string) bool {
	return len(p.Sources) == 0 || slices.Contains(p.Sources, source)
}

// AllowsIP reports whether ip is in the allowlist (or there is none).
func (p *Principal) AllowsIP(ip netip.Addr) bool {
	if len(p.IPAllowlist) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, n := range p.IPAllowlist {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// PlanLimit is a plan's default rate limit.
func PlanLimit(plan string) RateLimit {
	return RateLimit{Requests: auth.Plans[plan], Window: time.Hour}
}

// Verifier checks presented keys. A key that parses is looked up by its
// SHA-256 in a bounded in-process cache, and only on a miss in Postgres;
// changes reach the cache through Listen. It never writes.
type Verifier struct {
	q     *db.Queries
	cache *cache
	group singleflight.Group
	// Now is the clock the status checks read; tests move it.
	Now func() time.Time

	lookups     *ratelimit.Memory
	lookupLimit ratelimit.Limit
	// global bounds the database lookups of the whole instance, whatever
	// addresses they come from.
	global *rate.Limiter

	// While the listener is cut off, cached answers are served for at most
	// staleMax after currentAt, the last moment the cache was known to be
	// current (on the application's clock); currentWall is that moment on
	// the machine's clock, to catch up from changed_at in Postgres.
	cut         atomic.Bool
	currentAt   atomic.Int64
	currentWall atomic.Int64
	staleMax    time.Duration
	// dbDownUntil: after a lookup failed, lookups wait a moment, so an
	// outage costs each request no connection attempt.
	dbDownUntil atomic.Int64

	m   *metrics.Set
	hot hot
}

// VerifierOptions size the cache.
type VerifierOptions struct {
	// MaxEntries bounds the cache (default 100,000).
	MaxEntries int
	// TTL is how long a found key is trusted without a notification
	// (default 60 s): the safety net for a missed NOTIFY.
	TTL time.Duration
	// NegativeTTL is how long an unknown key is remembered (default 5 s).
	NegativeTTL time.Duration
	// LookupsPerClient bounds the lookups that find no key one client may
	// cause (default 600 a minute). The checksum is public, so made-up keys
	// pass Parse; each new one would cost a query. Lookups that find a key
	// are not charged, so strangers behind one address cannot spend a
	// valid client's budget.
	LookupsPerClient ratelimit.Limit
	// MaxLookupsPerSecond bounds the instance's lookups of keys it does not
	// know, from every address together (default 1,000): an attacker with
	// many addresses still cannot flood the database. Past it, such
	// requests get 503 with Retry-After.
	MaxLookupsPerSecond int
	// StaleMax bounds how long a cut-off instance serves cached keys
	// without hearing from the database (default 10 minutes); past it, it
	// fails closed.
	StaleMax time.Duration
}

// ErrUnavailable: the database cannot answer and the key is not cached
// (or the cache is past its staleness bound).
var ErrUnavailable = &errs.Error{Kind: errs.Unavailable, Code: errs.CodeUnavailable, RetryAfter: 2 * time.Second,
	Message: "Keys cannot be checked right now (the database is unreachable): retry in a few seconds."}

// hot are the hot path's counters, resolved once.
type hot struct {
	outcomeOK, outcomeMalformed, cacheHit, cacheMiss prometheus.Counter
}

// NewVerifier returns a verifier reading through q and counting into m.
func NewVerifier(q *db.Queries, o VerifierOptions, m *metrics.Set) *Verifier {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100_000
	}
	if o.TTL <= 0 {
		o.TTL = time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.LookupsPerClient.Requests <= 0 {
		o.LookupsPerClient = ratelimit.Limit{Requests: 600, Window: time.Minute}
	}
	if o.MaxLookupsPerSecond <= 0 {
		o.MaxLookupsPerSecond = 1000
	}
	if o.StaleMax <= 0 {
		o.StaleMax = 10 * time.Minute
	}
	v := &Verifier{q: q, cache: newCache(o.MaxEntries, o.TTL, o.NegativeTTL), Now: time.Now,
		lookups: &ratelimit.Memory{MaxBuckets: 100_000}, lookupLimit: o.LookupsPerClient,
		global: rate.NewLimiter(rate.Limit(o.MaxLookupsPerSecond), o.MaxLookupsPerSecond), staleMax: o.StaleMax, m: m,
		hot: hot{outcomeOK: m.Verifications.WithLabelValues("ok"), outcomeMalformed: m.Verifications.WithLabelValues("malformed"),
			cacheHit: m.CacheLookups.WithLabelValues("hit"), cacheMiss: m.CacheLookups.WithLabelValues("miss")}}
	v.markCurrent()
	return v
}

// markCurrent records that the cache is current now.
func (v *Verifier) markCurrent() {
	v.currentAt.Store(v.Now().UnixNano())
	v.currentWall.Store(time.Now().UnixNano())
}

// trusted reports whether cached answers may be served at now: always
// while the listener is up, and for staleMax after the cut otherwise.
func (v *Verifier) trusted(now time.Time) bool {
	return !v.cut.Load() || now.UnixNano()-v.currentAt.Load() <= int64(v.staleMax)
}

// Current reports whether the listener is connected and the cache caught
// up; /readyz and tests read it.
func (v *Verifier) Current() bool { return !v.cut.Load() }

// Verify checks raw: shape and checksum first, with no database work, then
// the cache, then Postgres, then the key's status at v.Now(). On a status
// error the principal is returned too, so the caller can log the refusal
// against the key's tenant.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	return v.VerifyFrom(ctx, raw, "")
}

// VerifyFrom is Verify for a request from the address ip (for IPv6, its
// /64 counts). A lookup that finds no key spends one of the address's
// lookups; with none left the next unknown key is ErrLookupsExhausted (with
// a retry time) and the database is not asked. Cached keys, known or not,
// cost nothing, and neither do lookups that find a key or that fail
// because the database is down. An empty ip is not limited.
//
// While the database cannot answer, a key cached before is served from
// the cache, within the staleness bound; any other key is ErrUnavailable.
// While the listener is cut off, a key is read again when the database
// answers, at most once every cutRecheck, so a key changed meanwhile is
// refused within that time, and a flood with one key costs the database
// one read a second, not one a request.
func (v *Verifier) VerifyFrom(ctx context.Context, raw, ip string) (*Principal, error) {
	parsed, err := Parse(raw)
	if err != nil {
		v.hot.outcomeMalformed.Inc()
		return nil, ErrInvalid
	}
	h := hashKey(raw)
	now := v.Now()
	p, found, hit, refresh := v.cache.get(h, now)
	switch {
	case hit && (!found || !v.cut.Load() || v.cache.readSince(h, now.Add(-cutRecheck))):
		v.hot.cacheHit.Inc()
		if refresh {
			go v.refresh(h)
		}
	default:
		v.hot.cacheMiss.Inc()
		if p, err = v.lookup(ctx, h, ip, now); err != nil {
			return nil, err
		}
		found = p != nil
	}
	// The stored environment is the authority; a key whose own token
	// disagrees with it was not issued by us.
	if !found || parsed.Env != p.Environment {
		v.m.Verifications.WithLabelValues("unknown").Inc()
		return nil, ErrUnknown
	}
	if err := p.Check(now); err != nil {
		v.m.Verifications.WithLabelValues(outcomeOf(err)).Inc()
		return p, err
	}
	v.hot.outcomeOK.Inc()
	return p, nil
}

// lookup asks the database for h, with the budgets of unknown keys, and
// falls back on the cache when the database cannot answer.
func (v *Verifier) lookup(ctx context.Context, h [32]byte, ip string, now time.Time) (*Principal, error) {
	stale, expired := v.cache.stale(h) // a key known before: it costs no budget
	fallback := func() (*Principal, error) {
		// A stale answer stands in within the staleness bound: counted
		// from the last moment the cache was known current while the
		// listener is cut, and from the entry's own expiry while it is up
		// (its notifications would have dropped it, but the TTL is the
		// safety net for one that was missed).
		if stale != nil && v.trusted(now) && now.Sub(expired) <= v.staleMax {
			v.m.Verifications.WithLabelValues("stale").Inc()
			return stale, nil
		}
		v.m.Verifications.WithLabelValues("unavailable").Inc()
		return nil, ErrUnavailable
	}
	if time.Now().UnixNano() < v.dbDownUntil.Load() {
		return fallback()
	}
	client := ""
	if stale == nil {
		if ip != "" {
			client = ClientOf(ip)
			if retry, out := v.lookups.Exhausted(client, v.lookupLimit); out {
				v.m.Verifications.WithLabelValues("throttled").Inc()
				e := refusal(ErrLookupsExhausted, fmt.Sprintf(
					"Too many unknown keys from %s had to be looked up: retry in %d s. Keys that exist never count.", ip, errs.Seconds(retry)))
				e.RetryAfter = retry
				return nil, e
			}
		}
		if !v.global.Allow() {
			v.m.Verifications.WithLabelValues("overloaded").Inc()
			return nil, &errs.Error{Kind: errs.Unavailable, Code: errs.CodeUnavailable, RetryAfter: time.Second,
				Message: "Too many unknown keys are being looked up right now: retry in a second."}
		}
	}
	p, err := v.load(ctx, h, now)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		v.dbDownUntil.Store(time.Now().Add(time.Second).UnixNano())
		return fallback()
	}
	if p == nil && client != "" {
		v.lookups.Allow(ctx, client, v.lookupLimit) // charged: it found nothing
	}
	return p, nil
}

// refresh reads a busy key again before its entry expires, so requests
// with it keep hitting the cache.
func (v *Verifier) refresh(h [32]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = v.load(ctx, h, v.Now()) // on failure the entry expires as before
}

// ClientOf is who pays for a lookup (and for a key report, in web/api):
// the address, or for IPv6 its /64, which one subscriber usually holds
// whole.
func ClientOf(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// load reads one key from Postgres, once however many requests miss on it
// at the same moment, and caches the answer (found or not). A request that
// joined a read which an invalidation of its key overtook reads again.
func (v *Verifier) load(ctx context.Context, h [32]byte, now time.Time) (*Principal, error) {
	gen := v.cache.generation()
	p, err := v.loadAt(ctx, h, now, gen)
	if err == nil && v.cache.staleFor(gen, p) {
		return v.loadAt(ctx, h, now, v.cache.generation())
	}
	return p, err
}

func (v *Verifier) loadAt(ctx context.Context, h [32]byte, now time.Time, gen uint64) (*Principal, error) {
	// The generation is part of the key: a request that arrives after an
	// invalidation never joins a load that began before it.
	res, err, _ := v.group.Do(string(h[:])+strconv.FormatUint(gen, 10), func() (any, error) {
		// Shared by every request waiting on this key, so one caller
		// going away must not fail the others.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		row, err := v.q.GetKeyForVerify(qctx, h[:])
		if errors.Is(err, db.ErrNotFound) {
			v.cache.put(h, nil, gen, now)
			return (*Principal)(nil), nil
		}
		if err != nil {
			return nil, err
		}
		p := principalOf(row)
		v.cache.put(h, p, gen, now)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*Principal), nil
}

// Invalidate drops every cached secret of the key keyID.
func (v *Verifier) Invalidate(keyID string) { v.cache.dropKey(keyID) }

// InvalidateAll empties the cache.
func (v *Verifier) InvalidateAll() { v.cache.dropAll() }

// listenerDown keeps the cache: nothing can change a key while the
// database is down, and a change made through another instance is caught
// up on reconnect. Meanwhile every key is read again, once a second at
// most, whenever the database answers, and cached answers stand in, for
// staleMax, when it does not.
func (v *Verifier) listenerDown() { v.cut.Store(true) }

// cutRecheck is how long, while the listener is cut off, a key read from
// the database is served from the cache before it is read again: within
// the second in which a revocation must reach every instance.
const cutRecheck = time.Second

// catchUpMargin reaches back before the last moment the cache was known
// current, for key operations whose transaction stamped changed_at before
// then but committed after.
const catchUpMargin = 2 * time.Minute

// listenerUp drops every key changed since the cache was last known
// current (read through q, on the listener's new connection), then trusts
// the cache again.
func (v *Verifier) listenerUp(ctx context.Context, q *db.Queries) error {
	// How long ago the cache was last current, by this machine's clock,
	// reckoned back from the database's: changed_at is the database's.
	dbNow, err := q.DatabaseNow(ctx)
	if err != nil {
		return err
	}
	ago := time.Duration(time.Now().UnixNano() - v.currentWall.Load())
	since := dbNow.Add(-ago - catchUpMargin)
	changed, err := q.ListAPIKeysChangedSince(ctx, since)
	if err != nil {
		return err
	}
	v.dbDownUntil.Store(0) // the database answered: lookups may ask it again
	if len(changed) > 10_000 {
		v.cache.dropAll()
	} else {
		for _, c := range changed {
			v.cache.dropKeyBefore(c.ID, c.ChangedAt)
		}
	}
	v.markCurrent()
	v.cut.Store(false)
	return nil
}

func principalOf(r db.GetKeyForVerifyRow) *Principal {
	k := r.APIKey
	p := &Principal{
		KeyID: k.ID, Name: k.Name, Prefix: r.Prefix, TenantID: k.TenantID, TenantSlug: r.TenantSlug, Plan: r.TenantPlan,
		Environment: Environment(k.Environment), Scopes: k.Scopes, Sources: k.Sources,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, DisabledAt: k.DisabledAt, RevokedAt: k.RevokedAt, ChangedAt: k.ChangedAt,
		SecretExpiresAt: r.SecretExpiresAt, RateLimit: PlanLimit(r.TenantPlan),
	}
	if rl := KeyRateLimit(k); rl != nil {
		p.RateLimit, p.KeyOverride = *rl, true
	}
	for _, c := range k.IpAllowlist {
		if n, err := netip.ParsePrefix(c); err == nil {
			p.IPAllowlist = append(p.IPAllowlist, n.Masked())
		} else if a, err := netip.ParseAddr(c); err == nil {
			p.IPAllowlist = append(p.IPAllowlist, netip.PrefixFrom(a, a.BitLen()))
		} else {
			// Normalize stores only valid CIDRs; an unreadable entry must
			// not widen the list, so it matches nothing.
			p.IPAllowlist = append(p.IPAllowlist, netip.Prefix{})
		}
	}
	return p
}

func outcomeOf(err error) string {
	switch {
	case errors.Is(err, ErrDisabled):
		return "disabled"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrRotated):
		return "rotated"
	case errors.Is(err, ErrRevokedKey):
		return "revoked"
	}
	return "error"
}

// Len is how many known keys the cache holds.
func (v *Verifier) Len() int { return v.cache.len() }
