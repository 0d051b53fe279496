package apikey

import (
	"sync"
	"time"
)

// cache maps a key's SHA-256 to its principal. Known keys and unknown ones
// live in separate maps with separate bounds, so a flood of made-up keys
// (the checksum is public, so they pass Parse) can push out only other
// made-up keys, never a real one. When a map is full, an arbitrary entry
// makes room: Go's map order makes that close to random eviction.
type cache struct {
	mu       sync.RWMutex
	known    map[[32]byte]cacheEntry
	unknown  map[[32]byte]time.Time // expiry
	maxKnown int
	maxUnk   int
	ttl      time.Duration
	negTTL   time.Duration

	// gen counts invalidations; recent remembers the latest ones, so a load
	// that began at generation g can tell whether its key changed since.
	gen    uint64
	recent []invalidation
}

type cacheEntry struct {
	p       *Principal
	expires time.Time
	// refreshAt is when a hit starts a background reload, so a key in use
	// is read again before it expires and never misses. The hit that
	// claims it moves it to expires, so one reload runs at a time.
	refreshAt time.Time
}

// invalidation: keyID "" means everything.
type invalidation struct {
	gen   uint64
	keyID string
}

const recentInvalidations = 256

func newCache(maxKnown int, ttl, negTTL time.Duration) *cache {
	return &cache{
		known: make(map[[32]byte]cacheEntry), unknown: make(map[[32]byte]time.Time),
		maxKnown: maxKnown, maxUnk: max(maxKnown/10, 1000), ttl: ttl, negTTL: negTTL,
	}
}

// get returns the cached answer for h: found says whether the key exists,
// hit whether the cache knew, and refresh whether this hit should reload
// the key in the background (it is close to expiry; one hit is told).
func (c *cache) get(h [32]byte, now time.Time) (p *Principal, found, hit, refresh bool) {
	c.mu.RLock()
	e, ok := c.known[h]
	var negUntil time.Time
	if !ok {
		negUntil = c.unknown[h]
	}
	c.mu.RUnlock()
	switch {
	case ok && now.Before(e.expires):
		return e.p, true, true, !now.Before(e.refreshAt) && c.claimRefresh(h, e.p)
	case !ok && now.Before(negUntil):
		return nil, false, true, false
	}
	return nil, false, false, false
}

// claimRefresh lets one hit start the reload of an entry.
func (c *cache) claimRefresh(h [32]byte, p *Principal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.known[h]
	if !ok || e.p != p || e.refreshAt.Equal(e.expires) {
		return false
	}
	e.refreshAt = e.expires
	c.known[h] = e
	return true
}

// stale returns the known entry for h even past its expiry: what the
// verifier may serve, within its staleness bound, while the database
// cannot answer. Entries dropped by an invalidation are gone, never stale.
func (c *cache) stale(h [32]byte) (p *Principal, expired time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.known[h]
	return e.p, e.expires
}

// readSince reports whether h is a known key whose entry was read from
// the database at or after since.
func (c *cache) readSince(h [32]byte, since time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.known[h]
	return ok && !e.expires.Add(-c.ttl).Before(since)
}

func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores an answer read when the generation was gen, unless the key
// (or everything) was invalidated since: then the answer may predate the
// change and is dropped.
func (c *cache) put(h [32]byte, p *Principal, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staleSince(gen, p) {
		return
	}
	if p == nil {
		delete(c.known, h) // a key that stopped existing is unknown now
		if _, ok := c.unknown[h]; !ok && len(c.unknown) >= c.maxUnk {
			evictOne(c.unknown)
		}
		c.unknown[h] = now.Add(c.negTTL)
		return
	}
	if _, ok := c.known[h]; !ok && len(c.known) >= c.maxKnown {
		evictOne(c.known)
	}
	c.known[h] = cacheEntry{p: p, expires: now.Add(c.ttl), refreshAt: now.Add(c.ttl * 3 / 4)}
}

// staleFor is staleSince under the lock, for readers outside put.
func (c *cache) staleFor(gen uint64, p *Principal) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.staleSince(gen, p)
}

// staleSince reports whether an invalidation after gen may concern p. An
// unknown key (p nil) is only stale after a full invalidation; a new key's
// hash cannot have been looked up before it existed.
func (c *cache) staleSince(gen uint64, p *Principal) bool {
	if c.gen == gen {
		return false
	}
	if len(c.recent) == 0 || c.recent[0].gen > gen+1 {
		return true // older than we remember: assume the worst
	}
	for _, inv := range c.recent {
		if inv.gen > gen && (inv.keyID == "" || p != nil && inv.keyID == p.KeyID) {
			return true
		}
	}
	return false
}

func (c *cache) note(keyID string) {
	c.gen++
	if len(c.recent) == recentInvalidations {
		c.recent = append(c.recent[:0], c.recent[1:]...)
	}
	c.recent = append(c.recent, invalidation{c.gen, keyID})
}

// dropKey removes every secret of one key. Key changes are rare admin
// actions, so a scan is cheaper than keeping a second index on the hot path.
func (c *cache) dropKey(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note(keyID)
	for h, e := range c.known {
		if e.p.KeyID == keyID {
			delete(c.known, h)
		}
	}
}

// dropKeyBefore removes the secrets of one key that were read before it
// changed at changedAt; entries read since are current and stay, so a
// catch-up drops only what it must.
func (c *cache) dropKeyBefore(keyID string, changedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note(keyID)
	for h, e := range c.known {
		if e.p.KeyID == keyID && e.p.ChangedAt.Before(changedAt) {
			delete(c.known, h)
		}
	}
}

// dropAll empties the cache.
func (c *cache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note("")
	clear(c.known)
	clear(c.unknown)
}

// len is how many known keys are cached.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.known)
}

func evictOne[V any](m map[[32]byte]V) {
	for k := range m {
		delete(m, k)
		return
	}
}
