package usage

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// Request ids carry the time they were made: twelve hex digits of Unix
// milliseconds, then twenty of randomness (80 bits), 32 characters in all.
// The server makes every id (a client's X-Request-ID is dropped), at the
// start of the request, on the application's clock, so the request-log
// row of an id pasted from an error envelope lies within idWindow of the
// id's time: Get reads only that stretch of the log, the one or two days'
// partitions it touches, instead of the tenant's whole log. An id of
// another shape (made before ids carried their time) is still found by
// reading the tenant's log newest first.
const (
	idTimeDigits = 12
	idLen        = idTimeDigits + 20
	idWindow     = time.Hour
)

// NewRequestID returns a fresh request id made at now.
func NewRequestID(now time.Time) string {
	var b [idLen]byte
	ms := uint64(now.UnixMilli())
	for i := idTimeDigits - 1; i >= 0; i-- {
		b[i] = "0123456789abcdef"[ms&0xf]
		ms >>= 4
	}
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	hex.Encode(b[idTimeDigits:], r[:])
	return string(b[:])
}

// requestIDTime is the time a request id made by NewRequestID names.
func requestIDTime(id string) (time.Time, bool) {
	if len(id) != idLen {
		return time.Time{}, false
	}
	for i := 0; i < idLen; i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return time.Time{}, false
		}
	}
	ms, err := strconv.ParseUint(id[:idTimeDigits], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
