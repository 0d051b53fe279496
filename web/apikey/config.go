package apikey

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"keyward/web/errs"
	"keyward/web/ratelimit"
)

// Scopes a key can hold.
const (
	ScopeEventsRead  = "events:read"
	ScopeEventsWrite = "events:write"
)

// AllScopes lists every scope, in display order.
var AllScopes = []string{ScopeEventsRead, ScopeEventsWrite}

// Presets are the permission presets of the create form.
var Presets = []struct {
	ID, Label string
	Scopes    []string
}{
	{"read_only", "Read only", []string{ScopeEventsRead}},
	{"ingest_only", "Ingest only", []string{ScopeEventsWrite}},
	{"full_access", "Full access", []string{ScopeEventsRead, ScopeEventsWrite}},
}

// PresetScopes returns the scopes of a preset id, or nil.
func PresetScopes(id string) []string {
	for _, p := range Presets {
		if p.ID == id {
			return slices.Clone(p.Scopes)
		}
	}
	return nil
}

// Summary names a scope set the way the presets do.
func Summary(scopes []string) string {
	for _, p := range Presets {
		if slices.Equal(p.Scopes, scopes) {
			return p.Label
		}
	}
	return strings.Join(scopes, ", ")
}

// RateLimit is a number of requests per window: the limiter's own type,
// so a key's limit goes to it as it is.
type RateLimit = ratelimit.Limit

// Windows are the rate-limit windows a key may use.
var Windows = []time.Duration{time.Minute, time.Hour, 24 * time.Hour}

// WindowName names a window in words: "minute", "hour" or "day".
func WindowName(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// ParseWindow reads a rate-limit window as forms and JSON bodies send it:
// "1m", "1h" or "24h" (any Go duration that equals one of Windows).
func ParseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || !slices.Contains(Windows, d) {
		return 0, errs.InvalidField("rate_limit", "The rate-limit window must be 1m, 1h or 24h.")
	}
	return d, nil
}

// ParseCIDRs reads an IP allowlist: addresses or networks, one per entry
// (blank entries skipped). A bare address is its own /32 or /128. It
// returns the networks in canonical form, without duplicates, or the
// first entry's problem.
func ParseCIDRs(list []string) ([]string, error) {
	var cidrs []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, errs.InvalidField("ip_allowlist", fmt.Sprintf("%q is not an IP address or CIDR (such as 203.0.113.0/24).", s))
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Masked() != p {
			return nil, errs.InvalidField("ip_allowlist", fmt.Sprintf("%q has host bits set; did you mean %s?", s, p.Masked()))
		}
		if !slices.Contains(cidrs, p.String()) {
			cidrs = append(cidrs, p.String())
		}
	}
	if len(cidrs) > 100 {
		return nil, errs.InvalidField("ip_allowlist", "Allow at most 100 networks.")
	}
	return cidrs, nil
}

// Config is everything an admin sets on a key.
type Config struct {
	Name        string
	Description string
	Environment Environment
	Scopes      []string
	Sources     []string
	IPAllowlist []string
	RateLimit   *RateLimit // nil: the plan's default
	ExpiresAt   *time.Time
	// ExpiresOnDate says the expiry came as a date (the portal's form):
	// Update then keeps a current expiry on that same date to the second.
	ExpiresOnDate bool
	// Unreadable lists fields the caller could not even read (a number
	// that is not one, a date that is not one). Validation reports them
	// with its own findings, so a form shows every problem at once.
	Unreadable errs.Fields
}

var sourceRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,99}$`)

// Normalize trims and validates c in place, normalising CIDRs and sorting
// scopes. It returns every problem at once, as one errs.Invalid error
// whose Fields name each field.
func (c *Config) Normalize(now time.Time) error { return c.NormalizeEdit(now, nil) }

// NormalizeEdit is Normalize for an edit of a key whose expiry is current:
// keeping that expiry is accepted even once it has passed, so an expired
// key can still be renamed or described.
func (c *Config) NormalizeEdit(now time.Time, current *time.Time) error {
	return c.normalize(now, current).Err()
}

// Validate is NormalizeEdit under the organisation's key policy p: a key
// that breaks a policy gets a field error naming it, with every other
// problem of the form.
func (c *Config) Validate(now time.Time, current *time.Time, p Policy) error {
	fs := c.normalize(now, current)
	p.check(c, now, current, &fs)
	return fs.Err()
}

func (c *Config) normalize(now time.Time, current *time.Time) errs.Fields {
	fs := slices.Clone(c.Unreadable)
	c.Name = strings.TrimSpace(c.Name)
	c.Description = strings.TrimSpace(c.Description)
	switch {
	case c.Name == "":
		fs.Add("name", "Give the key a name, such as “Billing worker”.")
	case utf8.RuneCountInString(c.Name) > 100 || !utf8.ValidString(c.Name) || strings.ContainsRune(c.Name, 0):
		fs.Add("name", "The name must be at most 100 characters.")
	}
	if utf8.RuneCountInString(c.Description) > 1000 || !utf8.ValidString(c.Description) || strings.ContainsRune(c.Description, 0) {
		fs.Add("description", "The description must be at most 1,000 characters.")
	}
	if !c.Environment.Valid() {
		fs.Add("environment", "Choose production, staging or development.")
	}
	var scopes []string
	for _, s := range c.Scopes {
		if !slices.Contains(AllScopes, s) {
			fs.Add("scopes", fmt.Sprintf("Unknown scope %q: use events:read and/or events:write.", s))
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) == 0 {
		fs.Add("scopes", "Choose a permission preset or at least one scope.")
	}
	slices.Sort(scopes)
	c.Scopes = scopes
	var sources []string
	for _, s := range c.Sources {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !sourceRe.MatchString(s) {
			fs.Add("sources", fmt.Sprintf("%q is not a valid source name (letters, digits, . _ : -, up to 100).", s))
		}
		if !slices.Contains(sources, s) {
			sources = append(sources, s)
		}
	}
	if len(sources) > 50 {
		fs.Add("sources", "Restrict a key to at most 50 sources.")
	}
	c.Sources = sources
	if cidrs, err := ParseCIDRs(c.IPAllowlist); err != nil {
		e, _ := errs.As(err)
		fs.Add("ip_allowlist", e.Message)
	} else {
		c.IPAllowlist = cidrs
	}
	if c.RateLimit != nil {
		if c.RateLimit.Requests < 1 || c.RateLimit.Requests > 1_000_000 {
			fs.Add("rate_limit", "The rate limit must be between 1 and 1,000,000 requests.")
		}
		if !slices.Contains(Windows, c.RateLimit.Window) {
			fs.Add("rate_limit", "The rate-limit window must be 1m, 1h or 24h.")
		}
	}
	unchanged := c.ExpiresAt != nil && current != nil && c.ExpiresAt.Equal(*current)
	if c.ExpiresAt != nil && !c.ExpiresAt.After(now) && !unchanged {
		fs.Add("expires_at", "The expiry must be in the future.")
	}
	return fs
}
