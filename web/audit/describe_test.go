package audit_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"keyward/web/audit"
)

// describeCases hold the diffs each action is written with, as the code
// writes them today and as earlier versions did, and the lines they read
// as.
var describeCases = []struct {
	action, diff string
	want         []string
}{
	{"api_key.created",
		`{"environment":{"to":"production"},"expires_at":{"from":"never","to":"2027-01-31T00:00:00Z"},"ip_allowlist":{"to":["203.0.113.0/24","198.51.100.7/32"]},"name":{"to":"Billing worker"},"prefix":{"to":"kw_prod_AbCd1234"},"rate_limit":{"to":{"requests":500,"window":"1h"}},"scopes":{"to":["events:read","events:write"]}}`,
		[]string{"Name: Billing worker", "Environment: production", "Permissions: events:read, events:write",
			"IP allowlist: 203.0.113.0/24, 198.51.100.7/32", "Rate limit: 500 per hour", "Expiry: 2027-01-31 00:00 UTC", "Secret: kw_prod_AbCd1234…"}},
	{"api_key.created", // before rate limits were written as objects
		`{"name":{"to":"Old"},"environment":{"to":"staging"},"scopes":{"to":["events:read"]},"rate_limit":{"from":"plan default","to":"1000/1h0m0s"},"prefix":{"to":"kw_stag_x"}}`,
		[]string{"Name: Old", "Environment: staging", "Permissions: events:read", "Rate limit: 1,000 per hour", "Secret: kw_stag_x…"}},
	{"api_key.updated",
		`{"rate_limit":{"to":{"requests":1000,"window":"1h"}},"ip_allowlist":{"from":["198.51.100.7/32"],"to":["198.51.100.7/32","203.0.113.0/24"]},"description":{"to":"nightly"},"expires_at":{"from":"never","to":"2027-01-31T00:00:00Z"}}`,
		[]string{"Description: none → nightly", "IP allowlist: added 203.0.113.0/24", "Rate limit: plan default → 1,000 per hour", "Expiry: never → 2027-01-31 00:00 UTC"}},
	{"api_key.updated",
		`{"rate_limit":{"from":{"requests":60,"window":"1m"},"to":null},"sources":{"from":["checkout","billing"],"to":[]},"name":{"from":"Worker","to":"Renamed"},"scopes":{"from":["events:read","events:write"],"to":["events:read"]}}`,
		[]string{"Name: Worker → Renamed", "Permissions: removed events:write", "Sources: removed checkout, billing (now any source)", "Rate limit: 60 per minute → plan default"}},
	{"api_key.updated", // the Go-duration form of earlier versions
		`{"rate_limit":{"from":"2000/24h0m0s","to":"plan default"},"expires_at":{"from":"2026-03-01T12:30:45Z","to":"never"}}`,
		[]string{"Rate limit: 2,000 per day → plan default", "Expiry: 2026-03-01 12:30:45 UTC → never"}},
	{"api_key.rotated",
		`{"grace":"1h","old_secrets_expire_at":"2026-01-02T16:04:05Z","prefix":{"to":"kw_prod_NewOne12"}}`,
		[]string{"New secret: kw_prod_NewOne12…", "Grace: 1 hour", "Previous secrets stop working: 2026-01-02 16:04:05 UTC"}},
	{"api_key.rotated", `{"grace":"168h0m0s","old_secrets_expire_at":"2026-01-09T15:04:00Z","prefix":{"to":"kw_prod_B"}}`,
		[]string{"New secret: kw_prod_B…", "Grace: 7 days", "Previous secrets stop working: 2026-01-09 15:04 UTC"}},
	{"api_key.rotated", `{"grace":"0s","old_secrets_expire_at":"2026-01-02T15:04:00Z","prefix":{"to":"kw_prod_C"}}`,
		[]string{"New secret: kw_prod_C…", "Grace: none", "Previous secrets stop working: 2026-01-02 15:04 UTC"}},
	{"api_key.rotated", `{"grace":"24h","old_secrets_expire_at":"2026-01-03T15:04:00Z","prefix":{"to":"kw_prod_D"}}`,
		[]string{"New secret: kw_prod_D…", "Grace: 24 hours", "Previous secrets stop working: 2026-01-03 15:04 UTC"}},
	{"api_key.grace_ended", `{"prefix":"kw_prod_Old12345","expires_at":{"from":"2026-01-02T16:04:05Z","to":"2026-01-02T15:10:00Z"}}`,
		[]string{"Stops working: 2026-01-02 16:04:05 UTC → 2026-01-02 15:10 UTC", "Secret: kw_prod_Old12345…"}},
	{"api_key.disabled", `{"disabled":{"from":false,"to":true}}`, []string{"Status: enabled → disabled"}},
	{"api_key.enabled", `{"disabled":{"from":true,"to":false}}`, []string{"Status: disabled → enabled"}},
	{"api_key.revoked", `{"status":{"from":"active","to":"revoked"}}`, []string{"Status: active → revoked"}},
	{"api_key.used_from_new_ip", `{"ip":"203.0.113.9"}`, []string{"New address: 203.0.113.9"}},
	{"api_key.leaked", `{"prefix":"kw_prod_AbCd1234","url":"https://github.com/acme/app/blob/main/.env","source":"secret scanning: commit","action":"revoked"}`,
		[]string{"Leaked secret: kw_prod_AbCd1234…", "Action taken: key revoked", "Found at: https://github.com/acme/app/blob/main/.env", "Reported by: secret scanning: commit"}},
	{"api_key.leaked", `{"prefix":"kw_prod_Old12345","url":"","source":"public report","action":"secret_ended","note":"in a gist"}`,
		[]string{"Leaked secret: kw_prod_Old12345…", "Action taken: the reported secret, rotated out, stopped at once", "Found at: not given", "Reported by: public report", "Note: in a gist"}},
	{"api_key.leaked", `{"prefix":"kw_dev_Zz","url":"x","source":"public report","action":"already_disabled"}`,
		[]string{"Leaked secret: kw_dev_Zz…", "Action taken: none: the key was disabled already", "Found at: x", "Reported by: public report"}},
	{"api_key.expired", `{"expires_at":"2026-12-01T10:00:00Z"}`, []string{"Expired at 2026-12-01 10:00 UTC"}},
	{"api_key.expiring", `{"expires_at":"2026-12-15T10:00:00Z","notice":"14_days","days_left":14}`,
		[]string{"Expires in 14 days, on 2026-12-15 10:00 UTC"}},
	{"api_key.expiring", `{"expires_at":"2026-12-02T09:30:15Z","notice":"1_day","days_left":1}`,
		[]string{"Expires in 1 day, on 2026-12-02 09:30:15 UTC"}},
	// A diff the sentence cannot read is listed field by field.
	{"api_key.expiring", `{"notice":"1_day"}`, []string{"Notice: 1 day ahead"}},
	{"auth.login.failed", `{"reason":"wrong_password","email":"ann@acme.test"}`, []string{"Reason: wrong password", "Email: ann@acme.test"}},
	{"auth.login.failed", `{"reason":"unknown_email"}`, []string{"Reason: unknown email address"}},
	{"auth.login.succeeded", `{"method":"recovery_code"}`, []string{"Method: recovery code"}},
	{"auth.mfa.enrolled", `{"recovery_codes":10}`, []string{"Recovery codes issued: 10"}},
	{"auth.mfa.failed", `{}`, nil},
	{"auth.mfa.replayed", `{}`, nil},
	{"auth.logout", `{}`, nil},
	{"user.created", `{"email":"ann@acme.test","role":"admin"}`, []string{"Email: ann@acme.test", "Role: admin"}},
	{"user.password_changed", `{}`, nil},
	{"user.password_change.failed", `{}`, nil},
	{"user.password_reset", `{"email":"ann@acme.test","sessions_ended":1200}`, []string{"Email: ann@acme.test", "Sessions ended: 1,200"}},
	{"tenant.created", `{"slug":"acme","name":"Acme Inc.","plan":"team"}`, []string{"Name: Acme Inc.", "Slug: acme", "Plan: team"}},
	{"user.invited", `{"email":"nina@acme.test","role":"admin","expires_at":"2026-12-03T09:00:00Z"}`,
		[]string{"Link expires: 2026-12-03 09:00 UTC", "Email: nina@acme.test", "Role: admin"}},
	{"user.invitation_revoked", `{"email":"nina@acme.test","role":"admin"}`, []string{"Email: nina@acme.test", "Role: admin"}},
	{"user.created", `{"email":"nina@acme.test","role":"admin","invitation_id":7,"invited_by":3}`,
		[]string{"Email: nina@acme.test", "Role: admin", "Invitation: 7", "Invited by user: 3"}},
	{"user.role_changed", `{"email":"nina@acme.test","role":{"from":"admin","to":"viewer"}}`, []string{"Email: nina@acme.test", "Role: admin → viewer"}},
	{"user.disabled", `{"email":"nina@acme.test","sessions_ended":2}`, []string{"Email: nina@acme.test", "Sessions ended: 2"}},
	{"user.enabled", `{"email":"nina@acme.test"}`, []string{"Email: nina@acme.test"}},
	{"user.mfa_reset", `{"email":"nina@acme.test","sessions_ended":1}`, []string{"Email: nina@acme.test", "Sessions ended: 1"}},
	{"user.sessions_ended", `{"sessions_ended":3}`, []string{"Sessions ended: 3"}},
	{"auth.mfa.recovery_codes_regenerated", `{"recovery_codes":10}`, []string{"Recovery codes issued: 10"}},
	{"auth.mfa.replaced", `{}`, nil},
	{"tenant.updated", `{"leak_action":{"from":"revoke","to":"disable"}}`, []string{"When a key is reported leaked: revoke it at once → disable it"}},
	{"tenant.updated", `{"name":{"from":"Acme","to":"Acme Inc."},"max_key_lifetime_days":{"from":null,"to":90},"require_production_ip_allowlist":{"from":false,"to":true}}`,
		[]string{"Name: Acme → Acme Inc.", "Longest key lifetime (days): none → 90", "Production keys need an IP allowlist: no → yes"}},
	{"api_key.disabled", `{"disabled":{"from":false,"to":true},"reason":"idle","idle_days":30,"last_used_at":"never"}`,
		[]string{"Status: enabled → disabled", "Reason: idle", "Idle for more than (days): 30", "Last used: never"}},
	// A field no version wrote yet still reads as words, never as JSON.
	{"api_key.updated", `{"webhook_url":{"from":"","to":"https://example.test/h"},"retries":{"to":3}}`,
		[]string{"Retries: none → 3", "Webhook url: none → https://example.test/h"}},
	{"api_key.updated", `not json`, nil},
	{"api_key.expired", `{}`, nil},
	{"api_key.expiring", `{}`, nil},
	{"api_key.leaked", `{}`, nil},
	{"webhook.created", `{"url":{"from":null,"to":"https://hooks.example.com/keyward?…"},"actions":{"from":null,"to":["api_key.revoked","audit.checkpoint"]}}`,
		[]string{"URL: https://hooks.example.com/keyward?…", "Actions: api_key.revoked, audit.checkpoint"}},
	{"webhook.updated", `{"actions":{"from":["api_key.revoked"],"to":["api_key.revoked","api_key.leaked"]},"disabled":{"from":true,"to":false}}`,
		[]string{"Status: disabled → enabled", "Actions: added api_key.leaked"}},
	// The type of the test event an owner sends: never in the trail, but
	// named like an action.
	{"webhook.test", `{}`, nil},
	{"webhook.disabled", `{"disabled":{"from":false,"to":true},"reason":"failing","failing_since":"2026-11-27T10:00:00Z"}`,
		[]string{"Status: enabled → disabled", "Reason: every delivery failed for 3 days", "Failing since: 2026-11-27 10:00 UTC"}},
	{"webhook.disabled", `{"disabled":{"from":false,"to":true},"reason":"owner","url":{"from":"https://a.example/h","to":"https://b.example/h"}}`,
		[]string{"Status: enabled → disabled", "Reason: turned off by an owner", "URL: https://a.example/h → https://b.example/h"}},
	{"webhook.deleted", `{"url":"https://hooks.example.com/keyward","actions":["api_key.revoked"]}`,
		[]string{"URL: https://hooks.example.com/keyward", "Actions: api_key.revoked"}},
}

func TestDescribe(t *testing.T) {
	for _, c := range describeCases {
		got := audit.Describe(c.action, json.RawMessage(c.diff))
		if !slices.Equal(got, c.want) {
			t.Errorf("Describe(%s, %s):\n got %q\nwant %q", c.action, c.diff, got, c.want)
		}
		for _, line := range got {
			if strings.ContainsAny(line, "{}\"") || regexp.MustCompile(`\d+h\d+m\d+s`).MatchString(line) {
				t.Errorf("%s: a line with JSON or a Go duration: %q", c.action, line)
			}
		}
	}
}

// TestEveryActionIsNamedAndDescribed: every action the code writes has a
// name in words and a case in describeCases, so a new action cannot reach
// the pages as a bare code.
func TestEveryActionIsNamedAndDescribed(t *testing.T) {
	written := map[string]bool{}
	action := regexp.MustCompile(`"((?:api_key|auth|user|tenant|webhook)\.[a-z_.]+)"`)
	for _, dir := range []string{"../../web", "../../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, "describe.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range action.FindAllStringSubmatch(string(b), -1) {
				written[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"api_key.created", "api_key.grace_ended", "auth.mfa.failed", "user.password_reset", "tenant.created"} {
		if !written[want] {
			t.Fatalf("the scan missed %s: it no longer finds the actions", want)
		}
	}
	for a := range written {
		if audit.ActionName(a) == a {
			t.Errorf("action %s has no name in words", a)
		}
		if !slices.ContainsFunc(describeCases, func(c struct {
			action, diff string
			want         []string
		}) bool {
			return c.action == a
		}) {
			t.Errorf("action %s has no case in describeCases", a)
		}
	}
}
