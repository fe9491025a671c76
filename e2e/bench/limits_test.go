package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServerCPUTime: the CPU time read from /proc/<pid>/stat grows while
// the process computes, and not while it sleeps.
func TestServerCPUTime(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; touch done; sleep 30")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	q := &proc{cmd: cmd}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop did not finish")
		}
	}
	busy := q.cpu()
	if busy <= 0 {
		t.Fatalf("CPU time after a busy loop: %s", busy)
	}
	time.Sleep(300 * time.Millisecond)
	if idle := q.cpu(); idle-busy > 20*time.Millisecond {
		t.Fatalf("CPU time grew by %s while the process slept", idle-busy)
	}
}

// TestMain lets the test binary act as `bench exec` (the wrapper servers
// are started through), so that TestExecWrapper runs the real code
// without building the bench.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		err := execWrapped(os.Args[2:])
		println("bench exec:", err.Error())
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestExecWrapper: `bench exec` puts the program on the CPUs given and in
// the cgroup given before it becomes the program.
func TestExecWrapper(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "exec", "--cpus", "0", "--", "/bin/cat", "/proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Cpus_allowed_list:\t0\n") {
		t.Fatalf("not on CPU 0 alone:\n%s", out)
	}
	cg, err := newMemCgroup()
	if err != nil {
		t.Skipf("no cgroup here: %v", err)
	}
	defer cg.remove()
	out, err = exec.Command(bin, "exec", "--cgroup", cg.dir, "--", "/bin/cat", "/proc/self/cgroup").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/"+filepath.Base(cg.dir)+"\n") {
		t.Fatalf("not in %s:\n%s", cg.dir, out)
	}
}

// A server sees none of this machine's AWS settings, only the bench's.
func TestServerEnvDropsTheMachinesAWSSettings(t *testing.T) {
	got := serverEnv([]string{"PATH=/bin", "AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt", "AWS_PROFILE=dev", "HOME=/root"},
		[]string{"AWS_REGION=eu-west-1", "GOMEMLIMIT=100MiB"})
	want := []string{"PATH=/bin", "HOME=/root", "AWS_REGION=eu-west-1", "GOMEMLIMIT=100MiB"}
	if !slices.Equal(got, want) {
		t.Fatalf("serverEnv = %q, want %q", got, want)
	}
}
