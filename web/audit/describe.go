package audit

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file turns stored events into words for pages: what an action is
// called, and one line per field of its diff, with units ("Rate limit:
// plan default → 1,000 per hour"). Pages show these lines and keep the
// stored diff, exactly as recorded, for whoever needs it. Diffs are read
// as every version of Keyward wrote them: rate limits as "1000/1h0m0s" or
// {"requests":1000,"window":"1h"}, grace windows as "1h0m0s" or "1h".

// actionNames name each action Keyward writes.
var actionNames = map[string]string{
	"api_key.created":                     "Key created",
	"api_key.updated":                     "Settings changed",
	"api_key.rotated":                     "Secret rotated",
	"api_key.grace_ended":                 "Rotation grace ended",
	"api_key.disabled":                    "Key disabled",
	"api_key.enabled":                     "Key enabled",
	"api_key.revoked":                     "Key revoked",
	"api_key.used_from_new_ip":            "Used from a new address",
	"api_key.leaked":                      "Reported leaked",
	"api_key.expiring":                    "Expiry notice",
	"api_key.expired":                     "Key expired",
	"auth.login.failed":                   "Sign-in failed",
	"auth.login.succeeded":                "Signed in",
	"auth.mfa.enrolled":                   "Authenticator set up",
	"auth.mfa.failed":                     "Wrong authenticator code",
	"auth.mfa.replayed":                   "Authenticator code used twice",
	"auth.logout":                         "Signed out",
	"user.created":                        "User created",
	"user.password_changed":               "Password changed",
	"user.password_change.failed":         "Password change refused",
	"user.password_reset":                 "Password reset",
	"tenant.created":                      "Organisation created",
	"tenant.updated":                      "Organisation settings changed",
	"user.invited":                        "Member invited",
	"user.invitation_revoked":             "Invitation revoked",
	"user.role_changed":                   "Role changed",
	"user.disabled":                       "Member disabled",
	"user.enabled":                        "Member enabled",
	"user.mfa_reset":                      "Authenticator reset",
	"user.sessions_ended":                 "Other sessions signed out",
	"auth.mfa.recovery_codes_regenerated": "New recovery codes",
	"auth.mfa.replaced":                   "Authenticator replaced",
	ActionChainKeyed:                      "Audit trail sealed with the key",
	ActionCheckpoint:                      "Audit checkpoint signed",
	"webhook.created":                     "Webhook endpoint registered",
	"webhook.updated":                     "Webhook endpoint changed",
	"webhook.disabled":                    "Webhook endpoint disabled",
	"webhook.deleted":                     "Webhook endpoint deleted",
	"webhook.test":                        "Webhook test event",
}

// Actions lists the actions ActionName knows, sorted: the audit log's
// filter offers them.
func Actions() []string {
	out := make([]string, 0, len(actionNames))
	for a := range actionNames {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// ActionName names an action in words ("Key created"); an action it does
// not know is returned as it is.
func ActionName(action string) string {
	if n, ok := actionNames[action]; ok {
		return n
	}
	return action
}

// kind says how a field's values read.
type kind int

const (
	kText     kind = iota
	kList          // a list of names or addresses
	kRate          // a rate limit
	kInstant       // a time, or "never"
	kDuration      // a grace window
	kSecret        // a secret's display prefix
	kDisabled      // true or false: disabled or enabled
	kNumber
	kWord // a code word such as wrong_password, read through words
)

// field is how one diff field reads.
type field struct {
	label string
	kind  kind
	// none is how an empty or absent value reads: a key created without
	// sources, or edited from no description.
	none string
}

// fields are the diff fields Keyward writes, in the order lines are
// shown; fields not listed come after them, by name.
var fields = []struct {
	name string
	field
}{
	{"name", field{"Name", kText, "none"}},
	{"description", field{"Description", kText, "none"}},
	{"environment", field{"Environment", kText, "none"}},
	{"scopes", field{"Permissions", kList, "none"}},
	{"sources", field{"Sources", kList, "any source"}},
	{"ip_allowlist", field{"IP allowlist", kList, "any address"}},
	{"rate_limit", field{"Rate limit", kRate, "plan default"}},
	{"expires_at", field{"Expiry", kInstant, "never"}},
	{"prefix", field{"Secret", kSecret, "none"}},
	{"grace", field{"Grace", kDuration, "none"}},
	{"old_secrets_expire_at", field{"Previous secrets stop working", kInstant, "never"}},
	{"disabled", field{"Status", kDisabled, ""}},
	{"status", field{"Status", kText, "none"}},
	{"ip", field{"Address", kText, "none"}},
	{"reason", field{"Reason", kWord, "none"}},
	{"method", field{"Method", kWord, "none"}},
	{"recovery_codes", field{"Recovery codes issued", kNumber, "none"}},
	{"email", field{"Email", kText, "none"}},
	{"role", field{"Role", kText, "none"}},
	{"sessions_ended", field{"Sessions ended", kNumber, "none"}},
	{"slug", field{"Slug", kText, "none"}},
	{"plan", field{"Plan", kText, "none"}},
	{"action", field{"Action taken", kWord, "none"}},
	{"url", field{"Found at", kText, "not given"}},
	{"source", field{"Reported by", kText, "unknown"}},
	{"note", field{"Note", kText, "none"}},
	{"leak_action", field{"When a key is reported leaked", kWord, "revoke it at once"}},
	{"notice", field{"Notice", kWord, "none"}},
	{"actions", field{"Actions", kList, "none"}},
	{"failing_since", field{"Failing since", kInstant, "never"}},
}

// labels rename a field for one action, where the usual name would
// mislead.
var labels = map[string]map[string]string{
	"api_key.rotated":          {"prefix": "New secret"},
	"api_key.grace_ended":      {"expires_at": "Stops working"},
	"api_key.used_from_new_ip": {"ip": "New address"},
	"api_key.leaked":           {"prefix": "Leaked secret"},
	"webhook.created":          {"url": "URL"},
	"webhook.updated":          {"url": "URL"},
	"webhook.deleted":          {"url": "URL"},
	"webhook.disabled":         {"url": "URL"},
	"api_key.disabled":         {"idle_days": "Idle for more than (days)", "last_used_at": "Last used"},
	"user.invited":             {"expires_at": "Link expires"},
	"user.created":             {"invitation_id": "Invitation", "invited_by": "Invited by user"},
	"tenant.updated": {
		"max_key_lifetime_days": "Longest key lifetime (days)", "require_production_ip_allowlist": "Production keys need an IP allowlist",
		"idle_key_disable_days": "Disable keys unused for (days)", "default_expiry_days": "Default key expiry (days)",
	},
}

// words are the code words some diffs hold, in words.
var words = map[string]string{
	"unknown_email":  "unknown email address",
	"wrong_password": "wrong password",
	"user_disabled":  "the user is disabled",
	"totp":           "authenticator code",
	"recovery_code":  "recovery code",
	"totp_enrolment": "authenticator set-up",
	// api_key.leaked's action, and the leak policy.
	"revoked":          "key revoked",
	"disabled":         "key disabled",
	"already_disabled": "none: the key was disabled already",
	"secret_ended":     "the reported secret, rotated out, stopped at once",
	"revoke":           "revoke it at once",
	"disable":          "disable it",
	"14_days":          "14 days ahead",
	"1_day":            "1 day ahead",
	"failing":          "every delivery failed for 3 days",
	"owner":            "turned off by an owner",
}

// maxText bounds a text value in a line; the stored diff has it whole.
const maxText = 120

// Describe turns an event's stored diff into lines a person reads, one per
// field: "Rate limit: plan default → 1,000 per hour", "IP allowlist: added
// 203.0.113.0/24", "Grace: 1 hour". It never returns JSON or Go durations;
// a diff it cannot read gives no lines (pages show the stored diff too).
func Describe(action string, diff json.RawMessage) []string {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(diff))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	if sentence := sentences[action]; sentence != nil {
		if line := sentence(m); line != "" {
			return []string{line}
		}
	}
	// What something was created with is its "to" ("from" is the empty
	// value, or left out). Only an edit leaves "from" out for an empty
	// value; elsewhere a change without it is a value set (a new secret).
	created, edit := strings.HasSuffix(action, ".created"), strings.HasSuffix(action, ".updated")
	var lines []string
	for _, name := range order(m) {
		f := lookup(name)
		if l := labels[action][name]; l != "" {
			f.label = l
		}
		if line := f.describe(decode(m[name]), created, edit); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

// sentences say some events in one sentence rather than field by field.
// One that cannot read its diff gives "", and the fields are listed.
var sentences = map[string]func(m map[string]json.RawMessage) string{
	// {"expires_at": "…"}: "Expired at 2026-12-01 10:00 UTC".
	"api_key.expired": func(m map[string]json.RawMessage) string {
		at, ok := timeField(m, "expires_at")
		if !ok {
			return ""
		}
		return "Expired at " + instant(at)
	},
	// {"expires_at": "…", "notice": "14_days", "days_left": 14}:
	// "Expires in 14 days, on 2026-12-15 10:00 UTC".
	"api_key.expiring": func(m map[string]json.RawMessage) string {
		at, ok := timeField(m, "expires_at")
		n, isNumber := decode(m["days_left"]).(json.Number)
		days, err := n.Int64()
		if !ok || !isNumber || err != nil || days < 0 {
			return ""
		}
		return "Expires in " + count(days, "day") + ", on " + instant(at)
	},
}

// timeField reads an RFC 3339 time field of a diff.
func timeField(m map[string]json.RawMessage, name string) (time.Time, bool) {
	s, ok := decode(m[name]).(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// order lists m's fields: the known ones in their order, then the rest by
// name.
func order(m map[string]json.RawMessage) []string {
	var known, rest []string
	for _, f := range fields {
		if _, ok := m[f.name]; ok {
			known = append(known, f.name)
		}
	}
	for name := range m {
		if !slices.Contains(known, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(known, rest...)
}

func lookup(name string) field {
	for _, f := range fields {
		if f.name == name {
			return f.field
		}
	}
	label := strings.ReplaceAll(name, "_", " ")
	if label != "" {
		label = strings.ToUpper(label[:1]) + label[1:]
	}
	return field{label: label, kind: kText, none: "none"}
}

func decode(raw json.RawMessage) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// asChange reads {"from": …, "to": …} (from left out when it was empty);
// ok is false for a plain value.
func asChange(v any) (from, to any, hasFrom, ok bool) {
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, nil, false, false
	}
	to, hasTo := m["to"]
	from, hasFrom = m["from"]
	if !hasTo || len(m) > 2 || len(m) == 2 && !hasFrom {
		return nil, nil, false, false
	}
	return from, to, hasFrom, true
}

// describe writes the line of one field. Of something created, a change
// reads as its new value. In an edit, a change without "from" left it out
// because it was empty, and it reads as f.none; elsewhere such a change is
// a value set.
func (f field) describe(v any, created, edit bool) string {
	from, to, hasFrom, isChange := asChange(v)
	switch {
	case !isChange:
		return f.label + ": " + f.value(v)
	case created || !hasFrom && !edit:
		return f.label + ": " + f.value(to)
	case f.kind == kList:
		return f.label + ": " + f.listChange(from, to)
	}
	return f.label + ": " + f.value(from) + " → " + f.value(to)
}

// listChange says what was added to and removed from a list.
func (f field) listChange(from, to any) string {
	a, b := strs(from), strs(to)
	var added, removed []string
	for _, x := range b {
		if !slices.Contains(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			removed = append(removed, x)
		}
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "added "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+strings.Join(removed, ", "))
	}
	if len(parts) == 0 {
		return f.value(to) + " (reordered)"
	}
	s := strings.Join(parts, "; ")
	if len(b) == 0 {
		s += " (now " + f.none + ")"
	}
	return s
}

// value writes one value of the field.
func (f field) value(v any) string {
	if v == nil {
		return f.none
	}
	switch f.kind {
	case kList:
		if l := strs(v); len(l) > 0 {
			return strings.Join(l, ", ")
		}
		return f.none
	case kRate:
		return rateText(v, f.none)
	case kInstant:
		return instantText(v, f.none)
	case kDuration:
		if s, ok := v.(string); ok {
			if d, err := time.ParseDuration(s); err == nil {
				return durationWords(d)
			}
		}
	case kSecret:
		if s, ok := v.(string); ok && s != "" {
			return s + "…"
		}
	case kDisabled:
		if b, ok := v.(bool); ok {
			return map[bool]string{true: "disabled", false: "enabled"}[b]
		}
	case kWord:
		if s, ok := v.(string); ok {
			if w, ok := words[s]; ok {
				return w
			}
		}
	}
	return plain(v, f.none)
}

// plain writes any JSON value as text: numbers with thousands separators,
// lists joined, objects as "key: value" pairs, long text cut.
func plain(v any, none string) string {
	switch x := v.(type) {
	case nil:
		return none
	case string:
		if x == "" {
			return none
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return instant(t)
		}
		return cut(x)
	case json.Number:
		return numberText(x)
	case bool:
		return map[bool]string{true: "yes", false: "no"}[x]
	case []any:
		if len(x) == 0 {
			return none
		}
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = plain(e, none)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = strings.ReplaceAll(k, "_", " ") + " " + plain(x[k], none)
		}
		return strings.Join(parts, ", ")
	}
	return none
}

func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxText {
		return s
	}
	r := []rune(s)
	return string(r[:maxText]) + "…"
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, plain(e, ""))
	}
	return out
}

// rateText reads a rate limit in any of its stored forms: null or "plan
// default", "1000/1h0m0s", or {"requests":1000,"window":"1h"}.
func rateText(v any, none string) string {
	var n json.Number
	var window string
	switch x := v.(type) {
	case string:
		req, w, ok := strings.Cut(x, "/")
		if !ok {
			return plain(x, none) // "plan default"
		}
		n, window = json.Number(req), w
	case map[string]any:
		n, _ = x["requests"].(json.Number)
		window, _ = x["window"].(string)
	default:
		return plain(v, none)
	}
	d, err := time.ParseDuration(window)
	if _, nerr := n.Int64(); err != nil || nerr != nil || d <= 0 {
		return plain(v, none)
	}
	return numberText(n) + " per " + windowWords(d)
}

// windowWords names a rate-limit window: "minute", "hour", "day", or "6
// hours".
func windowWords(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return durationWords(d)
}

// durationWords writes a duration in the largest unit that divides it,
// as the rotate form words its choices: "1 hour", "24 hours", "7 days",
// "90 minutes"; zero is "none".
func durationWords(d time.Duration) string {
	switch {
	case d == 0:
		return "none"
	case d%(24*time.Hour) == 0 && d > 24*time.Hour:
		return count(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return count(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return count(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return count(int64(d/time.Second), "second")
	}
	return d.String()
}

func count(n int64, unit string) string {
	s := thousands(strconv.FormatInt(n, 10)) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}

// instantText reads a stored time (RFC 3339) or "never".
func instantText(v any, none string) string {
	s, ok := v.(string)
	if !ok {
		return plain(v, none)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return instant(t)
	}
	return plain(s, none)
}

// instant writes a time as pages do: "2027-01-31 00:00 UTC", with seconds
// only when it has some.
func instant(t time.Time) string {
	t = t.UTC()
	if t.Second() != 0 || t.Nanosecond() != 0 {
		return t.Format("2006-01-02 15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04 UTC")
}

func numberText(n json.Number) string {
	if i, err := n.Int64(); err == nil {
		return thousands(strconv.FormatInt(i, 10))
	}
	if f, err := n.Float64(); err == nil {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return n.String()
}

// thousands puts commas between groups of three digits: 1,000.
func thousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
