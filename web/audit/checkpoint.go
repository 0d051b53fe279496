package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"keyward/db"
)

// A Checkpoint is a signed statement of a chain's head: chain Chain held
// Seq events at At, the last with hash Hash. Kept outside the database
// (the server logs each one), it shows whether the chain was later cut
// short or rewritten, which a database alone cannot: someone able to write
// to it can delete the last events and move the head back with them.
//
// Signature is Ed25519, by the key derived from KEYWARD_SECRET_KEY, over
// Message(). In JSON, Hash and Signature are standard base64 and At is
// RFC 3339 in UTC.
type Checkpoint struct {
	Chain     int64     `json:"chain"`
	Seq       int64     `json:"seq"`
	Hash      []byte    `json:"hash"`
	At        time.Time `json:"at"`
	Signature []byte    `json:"signature"`
}

// Message is what the signature covers: five lines, each ending in "\n",
//
//	keyward audit checkpoint v1
//	chain <chain>
//	seq <seq>
//	hash <hash as standard base64>
//	at <at, RFC 3339 in UTC with up to nine fractional digits>
//
// with the values written exactly as in the checkpoint's JSON, so anyone
// with the public key can check a checkpoint without Keyward.
func (c Checkpoint) Message() []byte {
	return fmt.Appendf(nil, "keyward audit checkpoint v1\nchain %d\nseq %d\nhash %s\nat %s\n",
		c.Chain, c.Seq, base64.StdEncoding.EncodeToString(c.Hash), c.At.UTC().Format(time.RFC3339Nano))
}

func (c Checkpoint) String() string {
	return fmt.Sprintf("checkpoint of %s at seq %d (%s)", ChainName(c.Chain), c.Seq, c.At.UTC().Format(time.RFC3339))
}

// TakeCheckpoints signs the head of every chain that changed since its
// last checkpoint (or never had one), records each checkpoint in its own
// chain as an audit.checkpoint event, with the checkpoint as its diff, and
// returns them. Each chain is done in a transaction of its own that holds
// the chain's head, so a chain whose head another instance has just
// checkpointed is skipped. A chain whose head is not its last event is not
// signed: verification will report it. Errors are joined; the checkpoints
// returned were all committed.
//
// First it seals every chain still made of SHA-256 events (SealChains),
// whatever its last event, so every chain is keyed after the first
// checkpoints of an upgraded database and a chain with no keyed event
// can only be a rewritten one.
func TakeCheckpoints(ctx context.Context, store *db.Store, keys *Keys, now time.Time) ([]Checkpoint, error) {
	if keys == nil {
		return nil, errNoKeys
	}
	var errs []error
	if _, err := SealChains(ctx, store, keys, now); err != nil {
		errs = append(errs, err)
	}
	chains, err := store.ListAuditChainsToCheckpoint(ctx)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	var out []Checkpoint
	for _, chain := range chains {
		var cp *Checkpoint
		err := store.InTx(ctx, func(q *db.Queries) error {
			cp = nil
			head, err := q.LockAuditChainHead(ctx, chain)
			if err != nil {
				return err
			}
			last, err := q.GetAuditEvent(ctx, db.GetAuditEventParams{ChainID: chain, Seq: head.Seq})
			if errors.Is(err, db.ErrNotFound) || err == nil && !bytes.Equal(last.Hash, head.Hash) {
				return fmt.Errorf("%s: the head (seq %d) is not the chain's last event; not signed: run keyward audit verify", ChainName(chain), head.Seq)
			}
			if err != nil {
				return err
			}
			if last.Action == ActionCheckpoint {
				return nil // another instance was first
			}
			c := Checkpoint{Chain: chain, Seq: head.Seq, Hash: head.Hash, At: now.UTC().Truncate(time.Microsecond)}
			c.Signature = ed25519.Sign(keys.sign, c.Message())
			ev := Event{ActorType: ActorSystem, Action: ActionCheckpoint, TargetType: "audit_chain",
				TargetID: strconv.FormatInt(chain, 10), Diff: c}
			if chain != 0 {
				ev.TenantID = &chain
			}
			if err := Record(ctx, q, keys, now, ev); err != nil {
				return err
			}
			cp = &c
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("audit checkpoint of %s: %w", ChainName(chain), err))
		} else if cp != nil {
			out = append(out, *cp)
		}
	}
	return out, errors.Join(errs...)
}

// CheckpointLogMessage is the message of the log line each checkpoint is
// written in.
const CheckpointLogMessage = "audit checkpoint"

// LogCheckpoints writes each checkpoint to log as a line of its own, at
// info, its fields in a group named checkpoint: with a JSON handler,
//
//	{"time":…,"level":"INFO","msg":"audit checkpoint","checkpoint":{"chain":3,"seq":41,"hash":"…","at":"…","signature":"…"}}
//
// and with a text handler, checkpoint.chain=3 checkpoint.seq=41 and so on.
// ParseCheckpoints reads both back.
func LogCheckpoints(log *slog.Logger, cps []Checkpoint) {
	for _, c := range cps {
		log.Info(CheckpointLogMessage, slog.Group("checkpoint",
			slog.Int64("chain", c.Chain), slog.Int64("seq", c.Seq),
			slog.String("hash", base64.StdEncoding.EncodeToString(c.Hash)),
			// A string: slog's text handler would cut a time.Time to
			// milliseconds, and the signature covers every digit.
			slog.String("at", c.At.UTC().Format(time.RFC3339Nano)),
			slog.String("signature", base64.StdEncoding.EncodeToString(c.Signature))))
	}
}

// ParseCheckpoints reads checkpoints kept outside the database, one a
// line: the server's log lines (JSON or text, as LogCheckpoints writes
// them, even behind a prefix such as syslog's), or bare checkpoint objects
// as JSON (an audit.checkpoint event's diff). Other lines, such as the
// rest of a log, are skipped; a line that holds a checkpoint with a field
// missing or unreadable, or that says "audit checkpoint" and holds none,
// is an error naming its line.
func ParseCheckpoints(r io.Reader) ([]Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var out []Checkpoint
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fields, err := jsonCheckpoint(line)
		if err == nil && fields == nil {
			fields, err = textCheckpoint(line)
		}
		if err == nil && fields == nil {
			if !strings.Contains(line, CheckpointLogMessage) {
				continue
			}
			err = errors.New("a checkpoint line whose checkpoint cannot be read")
		}
		var c Checkpoint
		if err == nil {
			c, err = checkpointOf(fields)
		}
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// jsonCheckpoint returns the fields of the checkpoint in the JSON object
// that starts at the line's first "{": its "checkpoint" object, or the
// object itself when it has a signature. Nil when the line holds none.
func jsonCheckpoint(line string) (map[string]string, error) {
	i := strings.IndexByte(line, '{')
	if i < 0 {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(line[i:]), &top) != nil {
		return nil, nil
	}
	if raw, ok := top["checkpoint"]; ok {
		if err := json.Unmarshal(raw, &top); err != nil {
			return nil, fmt.Errorf("checkpoint is not an object: %w", err)
		}
	} else if _, ok := top["signature"]; !ok {
		return nil, nil
	}
	fields := map[string]string{}
	for k, v := range top {
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // a number
		}
		fields[k] = s
	}
	return fields, nil
}

// textCheckpoint returns the checkpoint.* fields of a line of slog's text
// format (key=value, values quoted as Go strings when they need it);
// words that are not key=value, such as a prefix, are skipped. Nil when
// the line has none.
func textCheckpoint(line string) (map[string]string, error) {
	var fields map[string]string
	for {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			return fields, nil
		}
		end := strings.IndexAny(line, " \t=")
		if end < 0 {
			return fields, nil
		}
		if line[end] != '=' { // a word, not key=value
			line = line[end:]
			continue
		}
		key, rest := line[:end], line[end+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				if strings.HasPrefix(key, "checkpoint.") {
					return nil, fmt.Errorf("%s: badly quoted value", key)
				}
				return fields, nil
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if i := strings.IndexAny(rest, " \t"); i >= 0 {
			val, rest = rest[:i], rest[i:]
		} else {
			val, rest = rest, ""
		}
		if name, ok := strings.CutPrefix(key, "checkpoint."); ok {
			if fields == nil {
				fields = map[string]string{}
			}
			fields[name] = val
		}
		line = rest
	}
}

// checkpointOf reads a checkpoint's five fields.
func checkpointOf(f map[string]string) (Checkpoint, error) {
	var c Checkpoint
	var errs []error
	need := func(name string) string {
		v := f[name]
		if v == "" {
			errs = append(errs, fmt.Errorf("no %s", name))
		}
		return v
	}
	var err error
	if v := need("chain"); v != "" {
		if c.Chain, err = strconv.ParseInt(v, 10, 64); err != nil || c.Chain < 0 {
			errs = append(errs, fmt.Errorf("chain %q is not a chain number", v))
		}
	}
	if v := need("seq"); v != "" {
		if c.Seq, err = strconv.ParseInt(v, 10, 64); err != nil || c.Seq < 1 {
			errs = append(errs, fmt.Errorf("seq %q is not a sequence number", v))
		}
	}
	if v := need("hash"); v != "" {
		if c.Hash, err = base64.StdEncoding.DecodeString(v); err != nil {
			errs = append(errs, errors.New("hash is not base64"))
		}
	}
	if v := need("at"); v != "" {
		if c.At, err = time.Parse(time.RFC3339Nano, v); err != nil {
			errs = append(errs, fmt.Errorf("at %q is not an RFC 3339 time", v))
		}
	}
	if v := need("signature"); v != "" {
		if c.Signature, err = base64.StdEncoding.DecodeString(v); err != nil {
			errs = append(errs, errors.New("signature is not base64"))
		}
	}
	return c, errors.Join(errs...)
}

// CheckpointProblem is a checkpoint the chains do not bear out.
type CheckpointProblem struct {
	Checkpoint Checkpoint
	Reason     string
}

func (p CheckpointProblem) String() string { return p.Checkpoint.String() + ": " + p.Reason }

// VerifyCheckpoints checks checkpoints kept outside the database: each
// must be signed by pub, and its chain must still hold an event at its
// sequence number with its hash. It returns the checkpoints that fail,
// each with the reason.
func VerifyCheckpoints(ctx context.Context, q *db.Queries, pub ed25519.PublicKey, cps []Checkpoint) ([]CheckpointProblem, error) {
	var out []CheckpointProblem
	for _, c := range cps {
		bad := func(reason string) { out = append(out, CheckpointProblem{c, reason}) }
		if !ed25519.Verify(pub, c.Message(), c.Signature) {
			bad("its signature does not verify with this installation's public key (it was altered, or made with another KEYWARD_SECRET_KEY)")
			continue
		}
		e, err := q.GetAuditEvent(ctx, db.GetAuditEventParams{ChainID: c.Chain, Seq: c.Seq})
		switch {
		case errors.Is(err, db.ErrNotFound):
			bad(fmt.Sprintf("the chain has no event at seq %d any more (events were removed from its end)", c.Seq))
		case err != nil:
			return out, err
		case !bytes.Equal(e.Hash, c.Hash):
			bad(fmt.Sprintf("the event at seq %d has another hash than the checkpoint's (the chain was rewritten)", c.Seq))
		}
	}
	return out, nil
}

// PublicKeyPEM is the checkpoint verification key as a PEM "PUBLIC KEY"
// block (SubjectPublicKeyInfo, as openssl reads it).
func (k *Keys) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		panic(err) // Ed25519 keys always marshal
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
