package apikey

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/errs"
)

// Service is the keys aggregate. Each change checks the caller's role and
// every field first (so a typo costs no code), then, in one transaction,
// checks the second factor, makes the change, writes the audit event and
// notifies every instance's cache. Reads for pages go through it too.
type Service struct {
	Store *db.Store
	Auth  *auth.Service
	Now   func() time.Time
	// Audit keys the audit events of key operations.
	Audit *audit.Keys
}

// Key is a key as pages and the console see it. It never holds a secret.
type Key struct {
	ID          string
	TenantID    int64
	Name        string
	Description string
	Environment Environment
	Scopes      []string
	Sources     []string
	IPAllowlist []string
	// RateLimit is the key's own limit; nil means the plan's default.
	RateLimit  *RateLimit
	ExpiresAt  *time.Time
	CreatedAt  time.Time
	CreatedBy  *int64
	DisabledAt *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	LastUsedIP string
	// Prefix is the newest secret's display prefix (a revoked key's last).
	Prefix string
	// Live lists the prefixes of the secrets that work now.
	Live []string
	// Leaked is the latest report of the key as leaked; nil if none.
	Leaked *Leaked
}

// Leaked is when a key was reported leaked, where and by whom (leak.go),
// and which of its secrets, by display prefix.
type Leaked struct {
	At          time.Time
	URL, Source string
	Prefix      string
}

// Status derives the key's status at now; revocation outranks the rest.
func (k Key) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return StatusRevoked
	case k.DisabledAt != nil:
		return StatusDisabled
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return StatusExpired
	}
	return StatusActive
}

// Secret is one secret of a key, by its display prefix.
type Secret struct {
	Prefix    string
	CreatedAt time.Time
	// ExpiresAt is set once the secret was rotated out (or the key revoked).
	ExpiresAt *time.Time
	// LastRequestAt is when a request last presented the secret, accepted
	// or refused, to within a minute; nil if none did (since this was
	// recorded).
	LastRequestAt *time.Time
}

// InGrace reports whether the secret was rotated out but still works at
// now: its rotation's grace window is running.
func (s Secret) InGrace(now time.Time) bool { return s.ExpiresAt != nil && s.ExpiresAt.After(now) }

// Outcomes counts requests by how they ended.
type Outcomes struct {
	Success     int64 // any status below 400
	ClientError int64 // 4xx but 429
	RateLimited int64 // 429
	ServerError int64 // 5xx
}

// Total is every request counted.
func (o Outcomes) Total() int64 { return o.Success + o.ClientError + o.RateLimited + o.ServerError }

// Add returns o and p added up.
func (o Outcomes) Add(p Outcomes) Outcomes {
	return Outcomes{o.Success + p.Success, o.ClientError + p.ClientError, o.RateLimited + p.RateLimited, o.ServerError + p.ServerError}
}

// UsageDays is how many UTC days of usage a key's page reads.
const UsageDays = 30

// Detail is everything a key's page shows.
type Detail struct {
	Key     Key
	Secrets []Secret
	History []audit.Entry
	// Revocation is the audit event that revoked the key; nil unless it
	// is revoked (or if the event cannot be found).
	Revocation *audit.Entry
	// Hours counts requests per UTC hour by outcome, oldest first, from
	// the start of the UTC day UsageDays-1 days ago (First) to the current
	// hour, which starts at LastHour.
	Hours           []Outcomes
	First, LastHour time.Time
}

func keyOf(k db.APIKey) Key {
	return Key{ID: k.ID, TenantID: k.TenantID, Name: k.Name, Description: k.Description, Environment: Environment(k.Environment),
		Scopes: k.Scopes, Sources: k.Sources, IPAllowlist: k.IpAllowlist, RateLimit: KeyRateLimit(k), ExpiresAt: k.ExpiresAt,
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, DisabledAt: k.DisabledAt, RevokedAt: k.RevokedAt,
		LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIp, Leaked: leakedOf(k)}
}

func leakedOf(k db.APIKey) *Leaked {
	if k.LeakedAt == nil {
		return nil
	}
	return &Leaked{At: *k.LeakedAt, URL: k.LeakedUrl, Source: k.LeakedSource, Prefix: k.LeakedPrefix}
}

// change runs one confirmed operation: the role, then the code and fn in
// one transaction.
func (s *Service) change(ctx context.Context, by auth.Caller, code string, fn func(q *db.Queries, now time.Time) error) error {
	if !by.User.CanManageKeys() {
		return auth.ErrCannotManageKeys
	}
	return s.Auth.Confirm(ctx, by, code, fn)
}

// precheck refuses, before a code is spent, an operation on a key that is
// not the caller's or is revoked. The transaction checks again under lock.
func (s *Service) precheck(ctx context.Context, by auth.Caller, id string) (Key, error) {
	if !by.User.CanManageKeys() {
		return Key{}, auth.ErrCannotManageKeys
	}
	k, err := s.Get(ctx, by.Tenant.ID, id)
	if err == nil && k.RevokedAt != nil {
		return k, ErrRevoked
	}
	return k, err
}

// Create makes a key and returns it with its full secret, to be shown once.
func (s *Service) Create(ctx context.Context, by auth.Caller, code string, cfg Config) (Key, string, error) {
	if !by.User.CanManageKeys() {
		return Key{}, "", auth.ErrCannotManageKeys
	}
	if err := validate(ctx, s.Store.Queries, by.Tenant.ID, &cfg, s.Now(), nil); err != nil {
		return Key{}, "", err
	}
	var k Key
	var full string
	err := s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		row, secret, err := Create(ctx, q, s.Audit, by.Tenant.ID, cfg, by.Actor(), by.User.ID, now)
		if err != nil {
			return err
		}
		full = secret
		k, err = s.read(ctx, q, by.Tenant.ID, row.ID, now)
		return err
	})
	return k, full, err
}

// Update changes a key's configuration. With cfg.ExpiresOnDate, an expiry
// on the same UTC date as the current one keeps the current one to the
// second: a form that shows dates must not move it to midnight.
func (s *Service) Update(ctx context.Context, by auth.Caller, code, id string, cfg Config) (Key, error) {
	cur, err := s.precheck(ctx, by, id)
	if err != nil {
		return Key{}, err
	}
	cfg.Environment = cur.Environment
	if cfg.ExpiresOnDate && cfg.ExpiresAt != nil && cur.ExpiresAt != nil &&
		cfg.ExpiresAt.UTC().Format(time.DateOnly) == cur.ExpiresAt.UTC().Format(time.DateOnly) {
		cfg.ExpiresAt = cur.ExpiresAt
	}
	if err := validate(ctx, s.Store.Queries, by.Tenant.ID, &cfg, s.Now(), cur.ExpiresAt); err != nil {
		return Key{}, err
	}
	var k Key
	err = s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := Update(ctx, q, s.Audit, by.Tenant.ID, id, cfg, by.Actor(), now); err != nil {
			return err
		}
		var err error
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, err
}

// Rotate gives the key a new secret and retires the current ones after
// grace; it returns the new full secret, to be shown once.
func (s *Service) Rotate(ctx context.Context, by auth.Caller, code, id string, grace time.Duration) (Key, string, error) {
	if _, err := s.precheck(ctx, by, id); err != nil {
		return Key{}, "", err
	}
	var k Key
	var full string
	err := s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		secret, err := Rotate(ctx, q, s.Audit, by.Tenant.ID, id, grace, by.Actor(), now)
		if err != nil {
			return err
		}
		full = secret
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, full, err
}

// ParseGrace reads a rotation's grace window: "0", "1h", "24h" or "168h".
func ParseGrace(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || !containsDuration(Graces, d) {
		return 0, errGrace
	}
	return d, nil
}

func containsDuration(ds []time.Duration, d time.Duration) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// Disable stops a key until it is enabled again.
func (s *Service) Disable(ctx context.Context, by auth.Caller, code, id string) (Key, error) {
	return s.setDisabled(ctx, by, code, id, true)
}

// Enable lets a disabled key work again.
func (s *Service) Enable(ctx context.Context, by auth.Caller, code, id string) (Key, error) {
	return s.setDisabled(ctx, by, code, id, false)
}

func (s *Service) setDisabled(ctx context.Context, by auth.Caller, code, id string, disabled bool) (Key, error) {
	cur, err := s.precheck(ctx, by, id)
	if err != nil {
		return Key{}, err
	}
	if (cur.DisabledAt != nil) == disabled {
		return Key{}, alreadyIn(disabled) // checked again under lock
	}
	var k Key
	err = s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := SetDisabled(ctx, q, s.Audit, by.Tenant.ID, id, disabled, by.Actor(), now); err != nil {
			return err
		}
		var err error
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, err
}

// Revoke ends a key for good.
func (s *Service) Revoke(ctx context.Context, by auth.Caller, code, id string) (Key, error) {
	if _, err := s.precheck(ctx, by, id); err != nil {
		return Key{}, err
	}
	var k Key
	err := s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := Revoke(ctx, q, s.Audit, by.Tenant.ID, id, by.Actor(), now); err != nil {
			return err
		}
		var err error
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, err
}

// RevokeConfirmed is Revoke for people: it also asks for the key's name,
// typed again (confirmName, compared without surrounding spaces and
// ignoring case), and refuses a wrong one as a field error before the code
// is looked at, so a slip costs no code. The console's DELETE, which
// scripts call with the key's id, uses Revoke.
func (s *Service) RevokeConfirmed(ctx context.Context, by auth.Caller, code, id, confirmName string) (Key, error) {
	cur, err := s.precheck(ctx, by, id)
	if err != nil {
		return Key{}, err
	}
	if err := checkName(cur.Name, confirmName, code); err != nil {
		return Key{}, err
	}
	var k Key
	err = s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		locked, err := lockKey(ctx, q, by.Tenant.ID, id)
		if err != nil {
			return err
		}
		if err := checkName(locked.Name, confirmName, code); err != nil {
			return err // renamed meanwhile: rolled back, the code unspent
		}
		if err := Revoke(ctx, q, s.Audit, by.Tenant.ID, id, by.Actor(), now); err != nil {
			return err
		}
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, err
}

// checkName refuses a confirmation that does not name the key, with the
// code's own problem too if it is missing: every problem at once.
func checkName(name, typed, code string) error {
	if strings.EqualFold(strings.TrimSpace(typed), strings.TrimSpace(name)) {
		return nil
	}
	var fs errs.Fields
	if strings.TrimSpace(typed) == "" {
		fs.Add("confirm_name", "Type the key's name, "+name+", to confirm that you mean to revoke it.")
	} else {
		fs.Add("confirm_name", "That is not this key's name: type "+name+" to confirm.")
	}
	if strings.TrimSpace(code) == "" {
		fs.Add("code", "Enter the 6-digit code from your authenticator app, or a recovery code.")
	}
	return fs.Err()
}

// EndGrace ends now the rotation grace of the key's secret with prefix,
// instead of at the end of the window chosen when it was rotated out.
// Requests with that secret get KEY_EXPIRED from then on.
func (s *Service) EndGrace(ctx context.Context, by auth.Caller, code, id, prefix string) (Key, error) {
	prefix = audit.CleanText(prefix, 64) // the form's; a real one is 16 bytes
	if _, err := s.precheck(ctx, by, id); err != nil {
		return Key{}, err
	}
	_, secrets, err := s.readWithSecrets(ctx, s.Store.Queries, by.Tenant.ID, id, s.Now())
	if err != nil {
		return Key{}, err
	}
	now := s.Now()
	if !slices.ContainsFunc(secrets, func(sec Secret) bool { return sec.Prefix == prefix && sec.InGrace(now) }) {
		return Key{}, errNoGrace(prefix) // checked again under lock
	}
	var k Key
	err = s.change(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := EndGrace(ctx, q, s.Audit, by.Tenant.ID, id, prefix, by.Actor(), now); err != nil {
			return err
		}
		var err error
		k, err = s.read(ctx, q, by.Tenant.ID, id, now)
		return err
	})
	return k, err
}

// Get reads one key of the tenant with its live prefixes.
func (s *Service) Get(ctx context.Context, tenantID int64, id string) (Key, error) {
	return s.read(ctx, s.Store.Queries, tenantID, id, s.Now())
}

// read is Get through q: inside an operation's transaction the reply shows
// exactly what was committed.
func (s *Service) read(ctx context.Context, q *db.Queries, tenantID int64, id string, now time.Time) (Key, error) {
	k, _, err := s.readWithSecrets(ctx, q, tenantID, id, now)
	return k, err
}

// readWithSecrets is read, with every secret the key has had.
func (s *Service) readWithSecrets(ctx context.Context, q *db.Queries, tenantID int64, id string, now time.Time) (Key, []Secret, error) {
	if !ValidID(id) {
		return Key{}, nil, ErrNotFound
	}
	row, err := q.GetAPIKey(ctx, db.GetAPIKeyParams{TenantID: tenantID, ID: id})
	if errors.Is(err, db.ErrNotFound) {
		return Key{}, nil, ErrNotFound
	}
	if err != nil {
		return Key{}, nil, err
	}
	rows, err := q.ListAPIKeySecrets(ctx, db.ListAPIKeySecretsParams{TenantID: tenantID, KeyID: id})
	if err != nil {
		return Key{}, nil, err
	}
	k := keyOf(row)
	k.Live = []string{}
	secrets := make([]Secret, 0, len(rows))
	for i, sec := range rows {
		if i == 0 {
			k.Prefix = sec.Prefix
		}
		if sec.ExpiresAt == nil || sec.ExpiresAt.After(now) {
			k.Live = append(k.Live, sec.Prefix)
		}
		secrets = append(secrets, Secret{Prefix: sec.Prefix, CreatedAt: sec.CreatedAt, ExpiresAt: sec.ExpiresAt, LastRequestAt: sec.LastRequestAt})
	}
	return k, secrets, nil
}

// Detail reads what a key's page shows: the key, its secrets, its audit
// history, who revoked it, and its requests per hour by outcome over
// UsageDays days.
func (s *Service) Detail(ctx context.Context, tenantID int64, id string) (Detail, error) {
	now := s.Now()
	k, secrets, err := s.readWithSecrets(ctx, s.Store.Queries, tenantID, id, now)
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Key: k, Secrets: secrets}
	if d.History, err = audit.ListForTarget(ctx, s.Store.Queries, tenantID, "api_key", id); err != nil {
		return Detail{}, err
	}
	if k.RevokedAt != nil {
		if d.Revocation, err = s.revocation(ctx, tenantID, id, d.History); err != nil {
			return Detail{}, err
		}
	}
	d.LastHour = now.UTC().Truncate(time.Hour)
	y, m, day := now.UTC().Date()
	d.First = time.Date(y, m, day-(UsageDays-1), 0, 0, 0, 0, time.UTC)
	n := int(d.LastHour.Sub(d.First)/time.Hour) + 1
	rows, err := s.Store.CountKeyOutcomesByHour(ctx, db.CountKeyOutcomesByHourParams{TenantID: tenantID, KeyID: id, Since: d.First})
	if err != nil {
		return Detail{}, err
	}
	d.Hours = make([]Outcomes, n)
	for _, r := range rows {
		if i := int(r.Hour.UTC().Sub(d.First) / time.Hour); i >= 0 && i < n {
			d.Hours[i] = Outcomes{Success: r.Success, ClientError: r.ClientError, RateLimited: r.RateLimited, ServerError: r.ServerError}
		}
	}
	return d, nil
}

// revocation finds the event that revoked the key: among the newest
// events the page shows, or else asked for by itself (a key used from
// many new addresses just before its revocation can have more events
// after it than the page shows).
func (s *Service) revocation(ctx context.Context, tenantID int64, id string, history []audit.Entry) (*audit.Entry, error) {
	for i := range history {
		if history[i].Action == "api_key.revoked" {
			return &history[i], nil
		}
	}
	e, err := audit.LatestForTarget(ctx, s.Store.Queries, tenantID, "api_key", id, "api_key.revoked")
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Filter narrows a list of keys.
type Filter struct {
	Environment string // "" or an Environment
	Status      string // "" or a Status*
	// Search is text the key's name or one of its secrets' display
	// prefixes contains, case ignored; "" for every key.
	Search  string
	Sort    string // one of Sorts; "" is SortNewest
	Page    int    // from 1
	PerPage int
}

// The orders of the key list.
const (
	SortNewest        = "created_desc"
	SortOldest        = "created_asc"
	SortLastUsed      = "last_used_desc" // most recently used first; never used last
	SortLastUsedAsc   = "last_used_asc"  // never used first
	SortExpiresSoon   = "expires_asc"    // soonest expiry first; never expiring last
	SortExpiresLatest = "expires_desc"
)

// Sorts lists the orders the key list offers.
var Sorts = []string{SortNewest, SortOldest, SortLastUsed, SortLastUsedAsc, SortExpiresSoon, SortExpiresLatest}

// maxSearch bounds the search text.
const maxSearch = 100

// Page is one page of the key list.
type Page struct {
	// Filter is the filter applied: unknown values dropped, the search
	// trimmed (a full key becomes its display prefix), the page number
	// bounded.
	Filter Filter
	Keys   []Key
	More   bool
	// Matching is how many keys the filter matches, on every page.
	Matching int
	// Any says whether the tenant has any key at all, so an empty page
	// can tell "no keys yet" from "none match".
	Any bool
}

// CleanSearch trims a search and bounds its length. A full key pasted
// into the search becomes its display prefix, which finds it, so the
// page never shows the key back.
func CleanSearch(q string) string {
	q = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(q), "…"))
	if p, err := Parse(q); err == nil {
		return DisplayPrefix(p)
	}
	return audit.CleanText(q, maxSearch)
}

// List returns one page of the tenant's keys in the filter's order, each
// with its newest prefix, and how many match, in three queries.
func (s *Service) List(ctx context.Context, tenantID int64, f Filter) (Page, error) {
	now := s.Now()
	if f.Environment != "" && !Environment(f.Environment).Valid() {
		f.Environment = ""
	}
	switch f.Status {
	case "", StatusActive, StatusDisabled, StatusExpired, StatusRevoked:
	default:
		f.Status = ""
	}
	if !slices.Contains(Sorts, f.Sort) {
		f.Sort = SortNewest
	}
	f.Search = CleanSearch(f.Search)
	f.Page = min(max(f.Page, 1), 100_000) // keeps the offset far from int32 overflow
	n, err := s.Store.CountAPIKeysByTenant(ctx, db.CountAPIKeysByTenantParams{TenantID: tenantID, Environment: f.Environment,
		Status: f.Status, Search: f.Search, Now: now})
	if err != nil {
		return Page{}, err
	}
	p := Page{Filter: f, Matching: int(n.Matching), Any: n.Total > 0}
	if p.Matching == 0 {
		return p, nil
	}
	rows, err := s.Store.ListAPIKeysByTenant(ctx, db.ListAPIKeysByTenantParams{TenantID: tenantID, Environment: f.Environment,
		Status: f.Status, Search: f.Search, Sort: f.Sort, Now: now, Lim: int32(f.PerPage + 1), Off: int32((f.Page - 1) * f.PerPage)})
	if err != nil {
		return Page{}, err
	}
	if len(rows) > f.PerPage {
		rows, p.More = rows[:f.PerPage], true
	}
	prefixes, err := s.Store.ListSecretPrefixes(ctx, tenantID)
	if err != nil {
		return Page{}, err
	}
	prefixOf := make(map[string]string, len(prefixes))
	for _, pr := range prefixes {
		prefixOf[pr.KeyID] = pr.Prefix
	}
	for _, r := range rows {
		k := keyOf(r)
		if k.Prefix = prefixOf[k.ID]; k.Prefix == "" {
			k.Prefix = "kw_" + k.Environment.Token() + "_"
		}
		p.Keys = append(p.Keys, k)
	}
	return p, nil
}

// Names returns the names of the tenant's keys among ids, by id, revoked
// keys included (keys are never deleted). Ids that are not a key id, or
// not one of the tenant's keys, are left out.
func (s *Service) Names(ctx context.Context, tenantID int64, ids []string) (map[string]string, error) {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if ValidID(id) {
			valid = append(valid, id)
		}
	}
	out := make(map[string]string, len(valid))
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.Store.ListAPIKeyNames(ctx, db.ListAPIKeyNamesParams{TenantID: tenantID, Ids: valid})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// Named returns the ids of every key of the tenant ever called name (case
// ignored), oldest first: names are unique among live keys only, so a
// revoked key may share a live key's name.
func (s *Service) Named(ctx context.Context, tenantID int64, name string) ([]string, error) {
	return s.Store.ListAPIKeyIDsByName(ctx, db.ListAPIKeyIDsByNameParams{TenantID: tenantID, Name: name})
}

// All returns up to limit of the tenant's keys, newest first, each with its
// live prefixes, in two queries.
func (s *Service) All(ctx context.Context, tenantID int64, limit int) ([]Key, error) {
	now := s.Now()
	rows, err := s.Store.ListAPIKeysByTenant(ctx, db.ListAPIKeysByTenantParams{TenantID: tenantID, Now: now, Lim: int32(limit)})
	if err != nil {
		return nil, err
	}
	secrets, err := s.Store.ListLiveSecretsByTenant(ctx, db.ListLiveSecretsByTenantParams{TenantID: tenantID, Now: &now})
	if err != nil {
		return nil, err
	}
	live := map[string][]string{}
	for _, sec := range secrets {
		live[sec.KeyID] = append(live[sec.KeyID], sec.Prefix)
	}
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		k := keyOf(r)
		if k.Live = live[k.ID]; k.Live == nil {
			k.Live = []string{}
		}
		if len(k.Live) > 0 {
			k.Prefix = k.Live[0]
		}
		out = append(out, k)
	}
	return out, nil
}
