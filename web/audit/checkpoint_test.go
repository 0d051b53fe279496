package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/keyring"
)

func takeCheckpoints(t *testing.T, store *db.Store) []audit.Checkpoint {
	t.Helper()
	cps, err := audit.TakeCheckpoints(context.Background(), store, keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cps
}

// logged writes cps as serve's log does, in format, and reads them back.
func logged(t *testing.T, format string, cps []audit.Checkpoint) []audit.Checkpoint {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if format == "json" {
		log = slog.New(slog.NewJSONHandler(&buf, nil))
	}
	log.Info("keyward listening", "url", "http://localhost")
	audit.LogCheckpoints(log, cps)
	log.Info("stopped")
	back, err := audit.ParseCheckpoints(&buf)
	if err != nil {
		t.Fatalf("%s: %v\n%s", format, err, buf.String())
	}
	return back
}

func checkCheckpoints(t *testing.T, store *db.Store, cps []audit.Checkpoint) []audit.CheckpointProblem {
	t.Helper()
	problems, err := audit.VerifyCheckpoints(context.Background(), store.Queries, keys.PublicKey(), cps)
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

// TestCheckpoints: a checkpoint is taken of each chain that changed, and
// recorded in it; a chain whose last event is its checkpoint is skipped.
// Written to a log, JSON or text, and read back, checkpoints verify.
func TestCheckpoints(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	record(t, store, nil, "auth.login.failed")
	first := takeCheckpoints(t, store)
	if len(first) != 2 || first[0].Chain != 0 || first[0].Seq != 1 || first[1].Chain != tenant || first[1].Seq != 3 {
		t.Fatalf("checkpoints = %+v", first)
	}
	es := events(t, store, tenant)
	if last := es[len(es)-1]; last.Seq != 4 || last.Action != audit.ActionCheckpoint || !bytes.Equal(first[1].Hash, es[2].Hash) {
		t.Fatalf("the checkpoint event: %+v", last)
	}
	var diff audit.Checkpoint
	if err := json.Unmarshal(es[3].Diff, &diff); err != nil || !reflect.DeepEqual(diff, first[1]) {
		t.Fatalf("the checkpoint event's diff %s is not the checkpoint (%v)", es[3].Diff, err)
	}
	if again := takeCheckpoints(t, store); len(again) != 0 {
		t.Fatalf("unchanged chains checkpointed again: %+v", again)
	}
	record(t, store, &tenant, "api_key.updated")
	second := takeCheckpoints(t, store)
	if len(second) != 1 || second[0].Chain != tenant || second[0].Seq != 5 {
		t.Fatalf("after one more event: %+v", second)
	}
	all := append(first, second...)
	for _, format := range []string{"json", "text"} {
		back := logged(t, format, all)
		if !reflect.DeepEqual(back, all) {
			t.Fatalf("%s log: read back %+v, want %+v", format, back, all)
		}
	}
	if p := checkCheckpoints(t, store, all); len(p) != 0 {
		t.Fatalf("intact chains: %v", p)
	}
	if rep := verify(t, store); rep.Broken != nil || rep.Events != 6+2 {
		t.Fatalf("chains with checkpoints: %+v", rep)
	}
}

// TestCheckpointsCatchACutChain: events cut off the end of a chain, with
// its head moved back to match, leave a chain that verifies; the
// checkpoints kept outside do not.
func TestCheckpointsCatchACutChain(t *testing.T) {
	store, tenant := setup(t)
	for range 5 {
		record(t, store, &tenant, "api_key.updated")
	}
	kept := logged(t, "json", takeCheckpoints(t, store)) // of seq 5; seq 6 is the checkpoint event
	record(t, store, &tenant, "api_key.revoked")

	es := events(t, store, tenant)
	asSuperuser(t, store, exec(`DELETE FROM audit_events WHERE chain_id = $1 AND seq > 3`, tenant))
	asSuperuser(t, store, exec(`UPDATE audit_chain_heads SET seq = 3, hash = $2 WHERE chain_id = $1`, tenant, es[2].Hash))

	if rep := verify(t, store); rep.Broken != nil || rep.Events != 3 {
		t.Fatalf("the cut chain does not verify on its own: %+v", rep)
	}
	p := checkCheckpoints(t, store, kept)
	if len(p) != 1 || !strings.Contains(p[0].Reason, "no event at seq 5") {
		t.Fatalf("checkpoint of the cut chain: %v", p)
	}
}

// TestCheckpointsCatchARebuiltChain: a whole chain rebuilt with plain
// SHA-256 and its head marked unkeyed is reported by Verify (no keyed
// event) until the checkpoint job seals it as if it were written before
// the upgrade; the checkpoint kept from before the rebuild does not match
// it either way.
func TestCheckpointsCatchARebuiltChain(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	kept := takeCheckpoints(t, store)
	rewrite(t, store, tenant, 1, true)
	rep := verify(t, store)
	if rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "none of its events is keyed") {
		t.Fatalf("rebuilt chain: %+v", rep)
	}
	p := checkCheckpoints(t, store, kept)
	if len(p) != 1 || !strings.Contains(p[0].Reason, "another hash") {
		t.Fatalf("checkpoint of the rebuilt chain: %v", p)
	}
	takeCheckpoints(t, store) // seals it: only the kept checkpoints tell now
	if rep := verify(t, store); rep.Broken != nil {
		t.Fatalf("the sealed rebuilt chain: %+v", rep.Broken)
	}
	p = checkCheckpoints(t, store, kept)
	if len(p) != 1 || !strings.Contains(p[0].Reason, "another hash") {
		t.Fatalf("checkpoint of the rebuilt chain: %v", p)
	}
}

// TestForgedCheckpointsAreRefused: a checkpoint altered, or signed by
// another installation, does not verify.
func TestForgedCheckpointsAreRefused(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	cp := takeCheckpoints(t, store)[0]
	altered := cp
	altered.Seq = 2
	altered.Hash = events(t, store, tenant)[1].Hash

	ring, err := keyring.New([]byte("another installation's secret key, 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	otherKeys := audit.NewKeys(ring)
	otherStore, _ := setup(t)
	err = otherStore.InTx(context.Background(), func(q *db.Queries) error {
		return audit.Record(context.Background(), q, otherKeys, time.Now(), audit.Event{TenantID: &tenant, Action: "api_key.updated"})
	})
	if err != nil {
		t.Fatal(err)
	}
	other, err := audit.TakeCheckpoints(context.Background(), otherStore, otherKeys, time.Now())
	if err != nil || len(other) != 1 {
		t.Fatal(other, err)
	}

	p := checkCheckpoints(t, store, []audit.Checkpoint{cp, altered, other[0]})
	if len(p) != 2 || p[0].Checkpoint.Seq != 2 || p[1].Checkpoint.Seq != 1 {
		t.Fatalf("forged checkpoints: %v", p)
	}
	for _, p := range p {
		if !strings.Contains(p.Reason, "signature does not verify") {
			t.Errorf("%v", p)
		}
	}
}

// TestParseCheckpoints: other log lines are skipped; a bare checkpoint
// object (an audit.checkpoint event's diff) is read, and so are log lines
// behind a prefix, as syslog writes them; a checkpoint line with a field
// missing or unreadable, or cut short, is an error that names its line.
func TestParseCheckpoints(t *testing.T) {
	good := `{"chain":3,"seq":7,"hash":"AAEC","at":"2026-01-02T03:04:05.123456Z","signature":"AAEC"}`
	in := strings.Join([]string{
		`time=2026-01-02T03:04:05.000Z level=INFO msg="keyward listening" url=http://localhost:8080`,
		`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"request","path":"/checkpoint"}`,
		``,
		good,
		`Jan 02 03:04:05 host keyward[42]: {"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"audit checkpoint","checkpoint":{"chain":0,"seq":1,"hash":"AAEC","at":"2026-01-02T03:04:05Z","signature":"AAEC"}}`,
		`Jan 02 03:04:05 host keyward[42]: time=2026-01-02T03:04:05.000Z level=INFO msg="audit checkpoint" checkpoint.chain=4 checkpoint.seq=2 checkpoint.hash="AAE=" checkpoint.at=2026-01-02T03:04:05Z checkpoint.signature=AAEC`,
	}, "\n")
	cps, err := audit.ParseCheckpoints(strings.NewReader(in))
	if err != nil || len(cps) != 3 || cps[0].Chain != 3 || cps[0].Seq != 7 || cps[0].At.Nanosecond() != 123456000 ||
		cps[1].Chain != 0 || cps[1].Seq != 1 || cps[2].Chain != 4 || !bytes.Equal(cps[2].Hash, []byte{0, 1}) {
		t.Fatalf("cps = %+v, %v", cps, err)
	}
	for _, bad := range []string{
		`{"msg":"audit checkpoint","checkpoint":{"chain":3,"seq":7,"hash":"AAEC","signature":"AAEC"}}`,
		`time=x level=INFO msg="audit checkpoint" checkpoint.chain=3 checkpoint.seq=7 checkpoint.hash=AAEC checkpoint.at=yesterday checkpoint.signature=AAEC`,
		`{"chain":3,"seq":7,"hash":"not base64!","at":"2026-01-02T03:04:05Z","signature":"AAEC"}`,
		`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"audit checkpoint","checkpoint":{"chain":0,"seq":1,"ha`,
	} {
		_, err := audit.ParseCheckpoints(strings.NewReader(good + "\n" + bad))
		if err == nil || !strings.HasPrefix(err.Error(), "line 2: ") {
			t.Errorf("%s: err = %v, want one for line 2", bad, err)
		}
	}
}
