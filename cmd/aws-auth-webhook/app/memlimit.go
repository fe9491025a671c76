package app

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memLimitRatio is the share of the container's memory limit given to the
// Go runtime as its soft limit (GOMEMLIMIT): the chart's 128Mi becomes
// ~90MiB, leaving room for what the runtime does not count: the binary's
// pages (~27 MiB resident, charged to the cgroup), stacks outside the
// heap, the kernel's page cache. At 80% serve was OOM-killed in a 128Mi
// cgroup while reading a 1 MiB aws-auth (make bench).
const memLimitRatio = 0.7

// gcPercentUnderLimit is the garbage collector's GOGC when a memory limit
// is set: the heap may grow to three times what is live before a
// collection (GOGC=100: twice), and the limit still bounds it. Serving an
// edit allocates about a megabyte; at the default, collections were a
// fifth of the webhook's CPU (make bench). Without a limit the default
// stays: nothing else would stop a 1 MiB aws-auth's heap from growing.
const gcPercentUnderLimit = 200

// memoryLimit is what setMemoryLimit decided.
type memoryLimit struct {
	Bytes     int64  // the Go runtime's soft limit now; math.MaxInt64: none
	Container uint64 // the cgroup's limit, when it was read and there is one
	Source    string // why: "GOMEMLIMIT", "AUTOMEMLIMIT=off", "cgroup", "no cgroup limit"
	GCPercent int    // the collector's GOGC now
}

// withGCPercent sets the collector's GOGC to gcPercentUnderLimit when a
// limit is set and GOGC is not in the environment, and records it.
func (ml memoryLimit) withGCPercent() memoryLimit {
	percent := debug.SetGCPercent(-1)
	if ml.Bytes != math.MaxInt64 && os.Getenv("GOGC") == "" {
		percent = gcPercentUnderLimit
	}
	debug.SetGCPercent(percent)
	ml.GCPercent = percent
	return ml
}

// setMemoryLimit sets the Go runtime's soft memory limit to 70% of the
// container's (cgroup v2 memory.max or v1 memory.limit_in_bytes of this
// process's own cgroup, as automemlimit finds it from /proc/self), so that
// the garbage collector works harder as the limit nears instead of
// letting the heap double past it while a large aws-auth is being read.
// GOMEMLIMIT in the environment wins (the runtime has read it already).
// provider is memlimit.FromCgroup in production.
func setMemoryLimit(provider memlimit.Provider) (memoryLimit, error) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return memoryLimit{Bytes: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT"}.withGCPercent(), nil
	}
	if os.Getenv("AUTOMEMLIMIT") == "off" {
		return memoryLimit{Bytes: debug.SetMemoryLimit(-1), Source: "AUTOMEMLIMIT=off"}.withGCPercent(), nil
	}
	var container uint64
	seen := func() (uint64, error) {
		n, err := provider()
		container = n
		return n, err
	}
	// AUTOMEMLIMIT=<ratio>, the library's own knob, overrides the 70%.
	limit, err := memlimit.Set(memlimit.WithProvider(seen), memlimit.WithRatio(memLimitRatio))
	switch {
	case err != nil:
		return memoryLimit{Bytes: debug.SetMemoryLimit(-1)}.withGCPercent(), fmt.Errorf("reading the container's memory limit: %w", err)
	case limit == math.MaxInt64 || container == 0:
		return memoryLimit{Bytes: limit, Source: "no cgroup limit"}.withGCPercent(), nil
	}
	return memoryLimit{Bytes: limit, Container: container, Source: "cgroup"}.withGCPercent(), nil
}
