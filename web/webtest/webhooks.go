package webtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// VerifyStandardWebhook checks a delivery as the Standard Webhooks
// specification tells a receiver to, written from the specification and
// not from Keyward's signer: the key is the base64 after "whsec_"; the
// signed content is "{webhook-id}.{webhook-timestamp}.{raw body}"; the
// header holds space-separated "v1,{base64 HMAC-SHA256}" entries, one of
// which must match; the timestamp must be within 5 minutes of now.
func VerifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("a webhook header is missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp is %v from now", d)
	}
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return errors.New("the secret lacks its whsec_ prefix")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("the secret is not base64 of 24 to 64 bytes: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, id+"."+ts+".")
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// Receiver is a webhook receiver, which Keyward does not run: it keeps
// every request it is sent and answers with Status and Answer. While Hang
// is set, a request is kept, then held unanswered until its connection
// ends.
type Receiver struct {
	Server *httptest.Server
	Status atomic.Int32
	Hang   atomic.Bool
	Answer string
	mu     sync.Mutex
	got    []Received
}

// Received is one request a Receiver got.
type Received struct {
	Header http.Header
	Body   []byte
}

// NewReceiver starts a receiver, over TLS if tls, answering 200 until
// told otherwise; it stops when the test ends.
func NewReceiver(t testing.TB, tls bool) *Receiver {
	r := &Receiver{Answer: "<b>not today</b>"}
	r.Status.Store(http.StatusOK)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		// Read before the request is visible, so a test that changes them
		// on seeing it changes the next answer, not this one.
		status, hang := int(r.Status.Load()), r.Hang.Load()
		r.mu.Lock()
		r.got = append(r.got, Received{req.Header.Clone(), b})
		r.mu.Unlock()
		if hang {
			<-req.Context().Done()
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, r.Answer)
	})
	if tls {
		r.Server = httptest.NewUnstartedServer(h)
		r.Server.StartTLS()
	} else {
		r.Server = httptest.NewServer(h)
	}
	t.Cleanup(func() { r.Server.CloseClientConnections(); r.Server.Close() })
	return r
}

// Wait returns the first n requests, failing t after 60 s.
func (r *Receiver) Wait(t testing.TB, n int) []Received {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		got := append([]Received(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("the receiver did not get %d requests within 60 s", n)
	return nil
}

// Count is how many requests the receiver got.
func (r *Receiver) Count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }
