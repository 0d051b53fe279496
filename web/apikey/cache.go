package apikey

import (
	"sync"
	"time"
)

// cache maps a key's SHA-256 to its principal (nil: no such key). It is
// bounded: when full, an arbitrary entry makes room, which Go's map
// iteration order makes close enough to random eviction.
type cache struct {
	mu      sync.RWMutex
	entries map[[32]byte]cacheEntry
	gen     uint64 // bumped by every invalidation
	max     int
	ttl     time.Duration
	negTTL  time.Duration
}

type cacheEntry struct {
	p       *Principal
	expires time.Time
}

func newCache(max int, ttl, negTTL time.Duration) *cache {
	return &cache{entries: make(map[[32]byte]cacheEntry), max: max, ttl: ttl, negTTL: negTTL}
}

// get returns the cached answer for h: found says whether the key exists,
// hit whether the cache knew.
func (c *cache) get(h [32]byte, now time.Time) (p *Principal, found, hit bool) {
	c.mu.RLock()
	e, ok := c.entries[h]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, false, false
	}
	return e.p, e.p != nil, true
}

func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores an answer read when the generation was gen. If anything was
// invalidated since, the answer may predate the change, so it is dropped.
func (c *cache) put(h [32]byte, p *Principal, gen uint64, now time.Time) {
	ttl := c.ttl
	if p == nil {
		ttl = c.negTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.entries[h]; !ok && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[h] = cacheEntry{p: p, expires: now.Add(ttl)}
}

// dropKey removes every secret of one key. Key changes are rare admin
// actions, so a scan is cheaper than keeping a second index on the hot path.
func (c *cache) dropKey(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.p != nil && e.p.KeyID == keyID {
			delete(c.entries, h)
		}
	}
}

func (c *cache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
