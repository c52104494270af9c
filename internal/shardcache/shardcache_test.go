package shardcache_test

import (
	"fmt"
	"testing"

	"github.com/extauthz/extauthz/internal/shardcache"
)

func TestCache(t *testing.T) {
	t.Run("a value put is got back under its key", func(t *testing.T) {
		c := shardcache.New[string](100)
		c.Put(c.StringKey("a"), "A")
		if v, ok := c.Get(c.StringKey("a")); !ok || v != "A" {
			t.Fatalf("Get = %q, %v", v, ok)
		}
		if _, ok := c.Get(c.StringKey("b")); ok {
			t.Fatal("a key never put is found")
		}
	})
	t.Run("keys built from the same writes are equal, from other writes not", func(t *testing.T) {
		c := shardcache.New[int](10)
		if c.Key("a", "b") != c.Key("a", "b") || c.Key("a", "b") == c.Key("ab", "") {
			t.Fatal("keys do not follow their parts")
		}
	})
	t.Run("the cache never holds much more than its size", func(t *testing.T) {
		c := shardcache.New[int](640)
		for i := range 10_000 {
			c.Put(c.StringKey(fmt.Sprint(i)), i)
		}
		if n := c.Len(); n > 640+64 {
			t.Fatalf("Len = %d, want at most about 640", n)
		}
	})
	t.Run("replacing a value in a full shard evicts nothing", func(t *testing.T) {
		c := shardcache.New[int](1) // one entry per shard
		k := c.StringKey("a")
		c.Put(k, 1)
		c.Put(k, 2)
		if v, ok := c.Get(k); !ok || v != 2 {
			t.Fatalf("Get = %d, %v, want 2", v, ok)
		}
	})
}

func TestDoorkeeper(t *testing.T) {
	c := shardcache.New[int](10)
	t.Run("a first sighting is not admitted, the second is", func(t *testing.T) {
		d := shardcache.NewDoorkeeper(1024)
		k := c.StringKey("session")
		if d.Admit(k) {
			t.Fatal("a key never seen was admitted")
		}
		if !d.Admit(k) || !d.Admit(k) {
			t.Fatal("a key seen before was not admitted")
		}
	})
	t.Run("a key is forgotten once many others have been sighted", func(t *testing.T) {
		// The doorkeeper forgets everything at its size-th first sighting.
		// Counting the first sightings it reports, rather than the keys
		// offered, keeps this exact: a key that collides with earlier ones
		// is admitted early and is not a first sighting.
		d := shardcache.NewDoorkeeper(16)
		k := c.StringKey("session")
		if d.Admit(k) {
			t.Fatal("a key never seen was admitted")
		}
		for i, first := 0, 1; first < 16; i++ {
			if !d.Admit(c.StringKey(fmt.Sprint(i))) {
				first++
			}
		}
		if d.Admit(k) {
			t.Fatal("a key was remembered across 15 other first sightings by a doorkeeper of 16")
		}
	})
	t.Run("every key of a rotation is admitted from its second sighting on, colliding ones too", func(t *testing.T) {
		// 1000 sessions in turn, as the benchmark's mixed workload sends
		// them, through the 2000-key doorkeeper of a 1000-entry cache.
		d := shardcache.NewDoorkeeper(2000)
		keys := make([]shardcache.Key, 1000)
		for i := range keys {
			keys[i] = c.StringKey(fmt.Sprint("session-", i))
		}
		early := 0
		for _, k := range keys {
			if d.Admit(k) {
				early++
			}
		}
		for pass := range 3 {
			for i, k := range keys {
				if !d.Admit(k) {
					t.Fatalf("pass %d: session %d was not admitted on a later sighting", pass+2, i)
				}
			}
		}
		if early > 50 {
			t.Errorf("%d of 1000 first sightings admitted, want about 3%% at most", early)
		}
	})
}
