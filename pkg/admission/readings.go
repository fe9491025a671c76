package admission

import (
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// readings remembers how items of aws-auth read (awsauth.ItemCache). The
// stored object (oldObject) comes with every request, and the validating
// webhook is sent what the mutating one produced: from one request to the
// next, almost every item's text is one read before, so the engine reads
// only the items an edit touched. It changes no answer of the engine.
//
// It is bounded in bytes (the readings' own estimate of their size), least
// recently used first out: an entry of the usual shape reads into about 19
// times its text.
type readings struct {
	maxBytes int

	mu    sync.Mutex
	lru   *simplelru.LRU[string, *awsauth.ItemReading]
	bytes int
	stats ReadingStats
}

// DefaultReadingBytes bounds the readings kept (as the readings estimate
// themselves, which is about the heap they hold): every item of an
// aws-auth at the 1 MiB limit (about 5,700 entries, 19 MiB) with room for
// the items its edits change. Inside the chart's 128 Mi this leaves the
// requests in flight their room (the requests of a 1 MiB aws-auth carry
// 2 MiB each, and are worked on one at a time).
const DefaultReadingBytes = 24 << 20

// ReadingStats counts the item readings found in memory and made.
type ReadingStats struct {
	Hits, Misses uint64
	Items, Bytes int
}

func newReadings(maxBytes int) *readings {
	c := &readings{maxBytes: maxBytes}
	// The count bound is never the one reached: bytes are.
	c.lru, _ = simplelru.NewLRU[string, *awsauth.ItemReading](1<<30, func(text string, r *awsauth.ItemReading) {
		c.bytes -= len(text) + r.Size()
	})
	return c
}

func (c *readings) Get(text string) (*awsauth.ItemReading, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.lru.Get(text)
	if ok {
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
	return r, ok
}

func (c *readings) Add(text string, r *awsauth.ItemReading) {
	size := len(text) + r.Size()
	if size > c.maxBytes/8 {
		return // one huge item would push out everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(text) {
		return // read by two requests at once: the readings are the same
	}
	// The text is a piece of a whole aws-auth: kept as it is, it would
	// keep that whole document in memory.
	text = strings.Clone(text)
	c.lru.Add(text, r)
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.lru.RemoveOldest()
	}
}

// forget drops every reading kept.
func (c *readings) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
	c.bytes = 0
}

// Stats returns the counters.
func (c *readings) Stats() ReadingStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Items, s.Bytes = c.lru.Len(), c.bytes
	return s
}
