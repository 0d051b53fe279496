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
		if _, found, hit := c.get(hashOf(i), now); !found || !hit {
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
	if _, found, _ := c.get(hashOf(1), now); !found {
		t.Fatal("another key's invalidation dropped an unrelated load")
	}
	gen = c.generation()
	c.dropKey("b")
	c.put(hashOf(2), b, gen, now)
	if _, _, hit := c.get(hashOf(2), now); hit {
		t.Fatal("a load that predates its own key's invalidation was cached")
	}
	gen = c.generation()
	c.dropAll(false)
	c.put(hashOf(3), a, gen, now)
	if _, _, hit := c.get(hashOf(3), now); hit {
		t.Fatal("a load that predates a full invalidation was cached")
	}
	// Older than the remembered invalidations: assume the worst.
	gen = c.generation()
	for range recentInvalidations + 1 {
		c.dropKey("z")
	}
	c.put(hashOf(4), a, gen, now)
	if _, _, hit := c.get(hashOf(4), now); hit {
		t.Fatal("a load older than the invalidation memory was cached")
	}
}

// While the listener is down, answers are trusted for a second.
func TestCacheDegradedTTL(t *testing.T) {
	c := newCache(10, time.Minute, 5*time.Second)
	now := time.Now()
	c.dropAll(true)
	c.put(hashOf(1), &Principal{KeyID: "a"}, c.generation(), now)
	if _, _, hit := c.get(hashOf(1), now.Add(1100*time.Millisecond)); hit {
		t.Fatal("degraded cache kept an answer past 1 s")
	}
	c.dropAll(false)
	c.put(hashOf(1), &Principal{KeyID: "a"}, c.generation(), now)
	if _, _, hit := c.get(hashOf(1), now.Add(59*time.Second)); !hit {
		t.Fatal("restored cache lost an answer inside its TTL")
	}
}
