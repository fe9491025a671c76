package server

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// idleTrimmer gives memory back to the operating system once admissions
// have stopped for a while. Between edits the webhook has nothing to do
// for minutes or days; the heap a burst of edits left behind (garbage not
// yet collected, free pages the runtime keeps for the next burst) would
// stay resident all that time. debug.FreeOSMemory collects and returns it
// at once, after the burst, not during it; forget first drops what the
// handlers keep for a burst (Handlers.Forget).
type idleTrimmer struct {
	// after is how long admissions must have stopped; every how often
	// that is checked.
	after, every time.Duration
	now          func() time.Time
	trim         func()

	last    atomic.Int64 // when the last admission ended (UnixNano)
	trimmed int64        // when memory was last given back (UnixNano)
}

func newIdleTrimmer(forget func()) *idleTrimmer {
	return &idleTrimmer{after: 3 * time.Second, every: time.Second, now: time.Now, trim: func() {
		forget()
		debug.FreeOSMemory()
	}}
}

// touch records an admission.
func (t *idleTrimmer) touch() { t.last.Store(t.now().UnixNano()) }

// check gives memory back when there were admissions since the last time
// and none for t.after; it reports whether it did.
func (t *idleTrimmer) check() bool {
	last := t.last.Load()
	if last <= t.trimmed || t.now().UnixNano()-last < int64(t.after) {
		return false
	}
	t.trim()
	t.trimmed = t.now().UnixNano()
	return true
}

// Start checks every t.every until ctx ends (a manager.Runnable).
func (t *idleTrimmer) Start(ctx context.Context) error {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.check()
		}
	}
}
