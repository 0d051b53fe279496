package apikey

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func hashOf(i int) [32]byte { return sha256.Sum256([]byte(strconv.Itoa(i))) }

// A flood of unknown keys cannot push a known key out.
func TestCacheUnknownKeysCannotEvictKnownOnes(t *testing.T) {
	c := newCache(3, time.Minute, 5*time.Second)
	now := time.Now()
	for i := range 3 {
		c.put(hashOf(i), &Principal{KeyID: strconv.Itoa(i)}, c.generation(), now)
	}
	for i := 100; i < 10_100; i++ {
		c.put(hashOf(i), nil, c.generation(), now)
	}
	for i := range 3 {
		if _, found, hit, _ := c.get(hashOf(i), now); !found || !hit {
			t.Fatalf("known key %d was evicted by unknown ones", i)
		}
	}
	if len(c.unknown) > c.maxUnk {
		t.Fatalf("%d unknown entries, bound %d", len(c.unknown), c.maxUnk)
	}
}

// A load that began before an invalidation of its own key (or of
// everything) is not cached; one of another key is.
func TestCacheDropsLoadsThatPredateTheirInvalidation(t *testing.T) {
	c := newCache(10, time.Minute, 5*time.Second)
	now := time.Now()
	a, b := &Principal{KeyID: "a"}, &Principal{KeyID: "b"}

	gen := c.generation()
	c.dropKey("b")
	c.put(hashOf(1), a, gen, now)
	if _, found, _, _ := c.get(hashOf(1), now); !found {
		t.Fatal("another key's invalidation dropped an unrelated load")
	}
	gen = c.generation()
	c.dropKey("b")
	c.put(hashOf(2), b, gen, now)
	if _, _, hit, _ := c.get(hashOf(2), now); hit {
		t.Fatal("a load that predates its own key's invalidation was cached")
	}
	gen = c.generation()
	c.dropAll()
	c.put(hashOf(3), a, gen, now)
	if _, _, hit, _ := c.get(hashOf(3), now); hit {
		t.Fatal("a load that predates a full invalidation was cached")
	}
	// Older than the remembered invalidations: assume the worst.
	gen = c.generation()
	for range recentInvalidations + 1 {
		c.dropKey("z")
	}
	c.put(hashOf(4), a, gen, now)
	if _, _, hit, _ := c.get(hashOf(4), now); hit {
		t.Fatal("a load older than the invalidation memory was cached")
	}
}

// A busy key is reloaded before it expires: past three quarters of its TTL
// one hit (and only one) is told to refresh it. An expired entry is no hit
// but stays available as a stale answer, until its key is invalidated.
func TestCacheRefreshAndStale(t *testing.T) {
	c := newCache(10, time.Minute, 5*time.Second)
	now := time.Now()
	a := &Principal{KeyID: "a"}
	c.put(hashOf(1), a, c.generation(), now)
	if _, _, hit, refresh := c.get(hashOf(1), now.Add(44*time.Second)); !hit || refresh {
		t.Fatalf("at 44 s: hit %v refresh %v, want a hit and no refresh", hit, refresh)
	}
	if _, _, hit, refresh := c.get(hashOf(1), now.Add(46*time.Second)); !hit || !refresh {
		t.Fatalf("at 46 s: hit %v refresh %v, want a hit that refreshes", hit, refresh)
	}
	if _, _, _, refresh := c.get(hashOf(1), now.Add(47*time.Second)); refresh {
		t.Fatal("a second hit was told to refresh too")
	}
	if _, _, hit, _ := c.get(hashOf(1), now.Add(61*time.Second)); hit {
		t.Fatal("an expired entry was a hit")
	}
	if p, expired := c.stale(hashOf(1)); p != a || !expired.Equal(now.Add(time.Minute)) {
		t.Fatal("an expired entry is not available as a stale answer, with its expiry")
	}
	c.put(hashOf(1), a, c.generation(), now.Add(61*time.Second)) // the refresh lands
	if _, _, hit, refresh := c.get(hashOf(1), now.Add(62*time.Second)); !hit || refresh {
		t.Fatal("a refreshed entry is not fresh")
	}
	c.dropKey("a")
	if p, _ := c.stale(hashOf(1)); p != nil {
		t.Fatal("an invalidated key is still available as a stale answer")
	}
	c.put(hashOf(2), a, c.generation(), now)
	c.put(hashOf(2), nil, c.generation(), now)
	if p, _ := c.stale(hashOf(2)); p != nil {
		t.Fatal("a key found missing is still available as a stale answer")
	}
}
