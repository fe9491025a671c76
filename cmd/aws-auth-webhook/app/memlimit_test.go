package app

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// keepMemoryLimit restores the runtime's limit and clears the variables
// setMemoryLimit reads, for the test's duration.
func keepMemoryLimit(t *testing.T) {
	t.Helper()
	before := debug.SetMemoryLimit(-1)
	gogc := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(before); debug.SetGCPercent(gogc) })
	for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT", "GOGC"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	debug.SetMemoryLimit(math.MaxInt64)
}

func TestMemoryLimitIs70PercentOfTheContainers(t *testing.T) {
	keepMemoryLimit(t)
	ml, err := setMemoryLimit(memlimit.Limit(128 << 20)) // the chart's 128Mi
	if err != nil {
		t.Fatal(err)
	}
	want := int64(93952409) // 70% of 128Mi: 89.6 MiB, rounded down
	if ml.Bytes != want || ml.Container != 128<<20 || ml.Source != "cgroup" {
		t.Fatalf("got %+v, want %d bytes from the cgroup's %d", ml, want, 128<<20)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Fatalf("the runtime's limit is %d, want %d", got, want)
	}
	if got := debug.SetGCPercent(-1); got != gcPercentUnderLimit || ml.GCPercent != got {
		t.Fatalf("GOGC is %d (reported %d), want %d under a limit", got, ml.GCPercent, gcPercentUnderLimit)
	}
}

func TestGOGCFromTheEnvironmentWins(t *testing.T) {
	keepMemoryLimit(t)
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // what the runtime made of it at start
	if _, err := setMemoryLimit(memlimit.Limit(128 << 20)); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(-1); got != 50 {
		t.Fatalf("GOGC became %d, want the environment's 50", got)
	}
}

func TestMemoryLimitFromTheEnvironmentWins(t *testing.T) {
	keepMemoryLimit(t)
	t.Setenv("GOMEMLIMIT", "50MiB")
	debug.SetMemoryLimit(50 << 20) // what the runtime made of it at start
	ml, err := setMemoryLimit(func() (uint64, error) {
		t.Error("the cgroup was read although GOMEMLIMIT is set")
		return 128 << 20, nil
	})
	if err != nil || ml.Bytes != 50<<20 || ml.Source != "GOMEMLIMIT" {
		t.Fatalf("got %+v, %v; want GOMEMLIMIT's 50MiB", ml, err)
	}
	if got := debug.SetMemoryLimit(-1); got != 50<<20 {
		t.Fatalf("the runtime's limit became %d", got)
	}
}

func TestNoContainerLimitLeavesNoLimit(t *testing.T) {
	keepMemoryLimit(t)
	ml, err := setMemoryLimit(func() (uint64, error) { return 0, memlimit.ErrNoLimit })
	if err != nil || ml.Bytes != math.MaxInt64 || ml.Source != "no cgroup limit" {
		t.Fatalf("got %+v, %v; want no limit", ml, err)
	}
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Fatalf("GOGC became %d without a limit, want the default 100", got)
	}
}

func TestUnreadableCgroupIsReportedAndChangesNothing(t *testing.T) {
	keepMemoryLimit(t)
	debug.SetMemoryLimit(300 << 20)
	ml, err := setMemoryLimit(func() (uint64, error) { return 0, errors.New("no cgroup mounted") })
	if err == nil || !strings.Contains(err.Error(), "no cgroup mounted") {
		t.Fatalf("err = %v, want the provider's error", err)
	}
	if ml.Bytes != 300<<20 || debug.SetMemoryLimit(-1) != 300<<20 {
		t.Fatalf("the limit changed: %+v", ml)
	}
}

func TestAutomemlimitOffIsHonoured(t *testing.T) {
	keepMemoryLimit(t)
	t.Setenv("AUTOMEMLIMIT", "off")
	ml, err := setMemoryLimit(memlimit.Limit(128 << 20))
	if err != nil || ml.Bytes != math.MaxInt64 || ml.Source != "AUTOMEMLIMIT=off" {
		t.Fatalf("got %+v, %v", ml, err)
	}
}
