package server

import (
	"testing"
	"time"
)

func TestIdleTrimmerGivesMemoryBackOnceAfterABurst(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	trims := 0 // the handlers' Forget, then debug.FreeOSMemory
	tr := newIdleTrimmer(func() { trims++ })
	tr.now = func() time.Time { return now }

	if tr.check() {
		t.Fatal("trimmed before any admission")
	}
	tr.touch()
	now = now.Add(tr.after - time.Second)
	if tr.check() {
		t.Fatal("trimmed while admissions had stopped for less than the wait")
	}
	now = now.Add(2 * time.Second)
	if !tr.check() || trims != 1 {
		t.Fatalf("not trimmed after the wait (%d trims)", trims)
	}
	now = now.Add(time.Hour)
	if tr.check() || trims != 1 {
		t.Fatalf("trimmed again with no admission since (%d trims)", trims)
	}
	tr.touch()
	now = now.Add(tr.after)
	if !tr.check() || trims != 2 {
		t.Fatalf("not trimmed after the next burst (%d trims)", trims)
	}
}
