package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The chart gives the webhook's container a 128Mi memory limit. serve
// reads it from its own cgroup and sets GOMEMLIMIT to 70% of it. The
// bench reproduces that with a real cgroup when this machine lets it
// (root, a memory controller it can write), or else with GOMEMLIMIT set
// to what serve would have computed.
const (
	chartMemoryLimit = 128 << 20
	chartGOMEMLIMIT  = "89MiB"
)

// memCgroup is a cgroup of this machine holding the server under the
// chart's memory limit.
type memCgroup struct {
	dir     string // the cgroup's folder
	version string // "v1" or "v2"
}

func (c *memCgroup) String() string {
	if c.version == "v2" {
		return fmt.Sprintf("a cgroup v2 with memory.max=%dMi (%s)", chartMemoryLimit>>20, c.dir)
	}
	return fmt.Sprintf("a cgroup v1 with memory.limit_in_bytes=%dMi (%s); this machine's memory controller is on v1", chartMemoryLimit>>20, c.dir)
}

// peak is the most memory the kernel has charged to the cgroup, which is
// what its OOM killer judges against: RSS plus the page cache and kernel
// memory of the processes in it.
func (c *memCgroup) peak() int64 {
	f := "memory.peak"
	if c.version == "v1" {
		f = "memory.max_usage_in_bytes"
	}
	b, err := os.ReadFile(filepath.Join(c.dir, f))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// ooms counts the OOM kills in the cgroup.
func (c *memCgroup) ooms() int {
	f, key := "memory.events", "oom_kill"
	if c.version == "v1" {
		f = "memory.oom_control"
	}
	b, err := os.ReadFile(filepath.Join(c.dir, f))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == key {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

func (c *memCgroup) remove() { _ = os.Remove(c.dir) }

// newMemCgroup makes a child of this process's own memory cgroup with the
// chart's limit: v2 where the memory controller is on the unified
// hierarchy and can be delegated, else v1.
func newMemCgroup() (*memCgroup, error) {
	paths, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("aws-auth-webhook-bench-%d", os.Getpid())
	var whyNot []string
	if mp, ok := mounts["v2"]; ok {
		parent := filepath.Join(mp, paths["v2"])
		ctl, _ := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
		if strings.Contains(" "+strings.TrimSpace(string(ctl))+" ", " memory ") {
			// Fails when the parent holds processes (cgroup v2's "no
			// internal processes" rule) unless it already delegates memory.
			_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0)
			dir := filepath.Join(parent, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				whyNot = append(whyNot, "v2: "+err.Error())
			} else if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.Itoa(chartMemoryLimit)), 0); err != nil {
				_ = os.Remove(dir)
				whyNot = append(whyNot, "v2: "+err.Error())
			} else {
				return &memCgroup{dir: dir, version: "v2"}, nil
			}
		} else {
			whyNot = append(whyNot, "v2: no memory controller on the unified hierarchy")
		}
	}
	if mp, ok := mounts["v1"]; ok {
		dir := filepath.Join(mp, paths["v1"], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			whyNot = append(whyNot, "v1: "+err.Error())
		} else if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(chartMemoryLimit)), 0); err != nil {
			_ = os.Remove(dir)
			whyNot = append(whyNot, "v1: "+err.Error())
		} else {
			return &memCgroup{dir: dir, version: "v1"}, nil
		}
	}
	if len(whyNot) == 0 {
		whyNot = append(whyNot, "no cgroup file system mounted")
	}
	return nil, fmt.Errorf("no memory cgroup could be made: %s", strings.Join(whyNot, "; "))
}

// ownCgroups reads /proc/self/cgroup: this process's cgroup path on the
// unified hierarchy ("v2") and on the v1 memory hierarchy ("v1").
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			paths["v2"] = f[2]
		case strings.Contains(","+f[1]+",", ",memory,"):
			paths["v1"] = f[2]
		}
	}
	return paths, nil
}

// cgroupMounts finds where the unified hierarchy ("v2") and the v1 memory
// hierarchy ("v1") are mounted, from /proc/self/mountinfo. Only mounts of
// a hierarchy's root are taken, so that a path from /proc/self/cgroup
// joins onto them.
func cgroupMounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mounts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || a[3] != "/" {
			continue
		}
		switch {
		case b[0] == "cgroup2":
			mounts["v2"] = a[4]
		case b[0] == "cgroup" && strings.Contains(","+b[2]+",", ",memory,"):
			mounts["v1"] = a[4]
		}
	}
	return mounts, sc.Err()
}

// The load generator runs on one CPU, so that it does not take the
// server's: pinLoadGenerator pins every thread of this process (the load
// generator and the in-process AWS emulator) to one CPU, and servers are
// started through `bench exec`, which puts them back on every CPU (and
// into a cgroup) before exec'ing them.
type pinning struct {
	cpu int
	all unix.CPUSet // what the process had before
}

func pinLoadGenerator() (*pinning, error) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, err
	}
	if all.Count() < 2 {
		return nil, fmt.Errorf("only %d CPU available: nothing to pin apart", all.Count())
	}
	p := &pinning{cpu: -1, all: all}
	for i := range 1024 {
		if all.IsSet(i) {
			p.cpu = i
			break
		}
	}
	var one unix.CPUSet
	one.Set(p.cpu)
	// Twice: a thread started while the first pass ran may have inherited
	// the old mask.
	for range 2 {
		if err := setThreadsAffinity(&one); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pinning) unpin() { _ = setThreadsAffinity(&p.all) }

func (p *pinning) String() string {
	return fmt.Sprintf("the load generator (and the in-process AWS emulator) pinned to CPU %d with sched_setaffinity; the servers on all %d CPUs", p.cpu, p.all.Count())
}

// cpuList is p.all for `bench exec --cpus`.
func (p *pinning) cpuList() string {
	var l []string
	for i := range 1024 {
		if p.all.IsSet(i) {
			l = append(l, strconv.Itoa(i))
		}
	}
	return strings.Join(l, ",")
}

func setThreadsAffinity(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
		}
	}
	return nil
}

// execWrapped is `bench exec [--cgroup DIR] [--cpus 0,1] -- BIN ARGS...`:
// it joins the cgroup, widens its CPU affinity, then becomes BIN (same
// pid, so the bench measures BIN through /proc/<pid>), which therefore
// starts inside the cgroup, as in a container.
func execWrapped(args []string) error {
	runtime.LockOSThread() // the affinity set below is this thread's, which exec keeps
	var cgroup, cpus string
	for len(args) > 0 && args[0] != "--" {
		if len(args) < 2 {
			return fmt.Errorf("exec: %q needs a value", args[0])
		}
		switch args[0] {
		case "--cgroup":
			cgroup = args[1]
		case "--cpus":
			cpus = args[1]
		default:
			return fmt.Errorf("exec: unknown flag %q", args[0])
		}
		args = args[2:]
	}
	if len(args) < 2 {
		return fmt.Errorf("usage: bench exec [--cgroup DIR] [--cpus LIST] -- BIN ARGS")
	}
	args = args[1:]
	if cgroup != "" {
		if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("joining %s: %w", cgroup, err)
		}
	}
	if cpus != "" {
		var set unix.CPUSet
		for _, c := range strings.Split(cpus, ",") {
			n, err := strconv.Atoi(c)
			if err != nil {
				return fmt.Errorf("--cpus %q: %w", cpus, err)
			}
			set.Set(n)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return err
		}
	}
	return syscall.Exec(args[0], args, os.Environ())
}
