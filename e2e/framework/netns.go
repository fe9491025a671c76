//go:build e2e

package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// NetNS is a network namespace the test created with `ip netns add`: its
// own loopback, on which the test puts the project's test addresses (pod
// IPs), so that the apiserver's call through a Service reaches a process on
// this machine as it would reach a pod. Processes run in it through `ip
// netns exec`; the test process itself stays in the host namespace and
// reaches into the namespace with DialContext, whose sockets are created
// inside it.
type NetNS struct {
	Name string
	path string
}

var netnsSeq atomic.Int32

// RequireNetNSTools fails the test, saying how to fix it, unless it runs as
// root with iproute2's `ip` on PATH.
func RequireNetNSTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test creates a network namespace (ip netns add) and must run as root (euid %d); CI runs it as root", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("this test needs iproute2's `ip` (ip netns add/exec): apt-get install -y iproute2")
	}
}

// NewNetNS creates a network namespace with its loopback up. When the test
// ends, every process still in it is killed (by PID, as listed by `ip
// netns pids`) and the namespace is deleted; register it before anything
// that starts processes in it, so that it is cleaned up last.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	RequireNetNSTools(t)
	removeStaleNetNS(t)
	n := &NetNS{Name: fmt.Sprintf("aaw-e2e-%d-%d", os.Getpid(), netnsSeq.Add(1))}
	n.path = filepath.Join("/run/netns", n.Name)
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", n.Name, err, out)
	}
	t.Cleanup(func() { n.destroy(t) })
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// removeStaleNetNS deletes the empty namespaces an earlier test binary
// created and could not remove (it was killed: a go test timeout). Its
// processes died with it (Pdeathsig); a namespace that still holds any is
// left alone.
func removeStaleNetNS(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid, seq int
		if _, err := fmt.Sscanf(e.Name(), "aaw-e2e-%d-%d", &pid, &seq); err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // its test binary still runs
		}
		stale := &NetNS{Name: e.Name()}
		if pids, err := stale.Pids(); err != nil || len(pids) > 0 {
			t.Logf("netns %s of an ended test run still holds processes %v; left alone", e.Name(), pids)
			continue
		}
		if err := exec.Command("ip", "netns", "del", e.Name()).Run(); err == nil {
			t.Logf("removed netns %s left by an ended test run (pid %d)", e.Name(), pid)
		}
	}
}

// IP runs `ip -n NAME args...` and fails the test on error.
func (n *NetNS) IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
}

// AddLoopbackAddr puts cidr (e.g. 10.244.0.10/32) on the namespace's lo.
func (n *NetNS) AddLoopbackAddr(t testing.TB, cidr string) {
	t.Helper()
	n.IP(t, "addr", "add", cidr, "dev", "lo")
}

// Pids lists the processes in the namespace.
func (n *NetNS) Pids() ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", n.Name).Output()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (n *NetNS) destroy(t testing.TB) {
	// Every process is stopped by its own cleanup first; anything left was
	// started by this test in this namespace (a child of a child).
	for attempt := 0; attempt < 50; attempt++ {
		pids, err := n.Pids()
		pids = slices.DeleteFunc(pids, func(pid int) bool { return pid == os.Getpid() }) // never the test itself
		if err != nil || len(pids) == 0 {
			break
		}
		if attempt == 0 {
			t.Logf("netns %s: killing leftover processes %v", n.Name, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v\n%s", n.Name, err, out)
	}
}

// Do runs fn on an OS thread that has joined the namespace, so that the
// sockets fn creates (a dial, a listener) belong to it; the sockets stay
// in the namespace afterwards. The thread goes back to its own namespace
// before other goroutines may use it (if it cannot, it stays locked and
// the runtime retires it with the goroutine).
func (n *NetNS) Do(fn func() error) error {
	if sysSetns == 0 {
		return fmt.Errorf("setns: unknown syscall number on %s", runtime.GOARCH)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open(n.path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = setns(target)
		target.Close()
		if err != nil {
			// Not switched, or half: never hand the thread back.
			errc <- fmt.Errorf("setns %s: %w", n.path, err)
			return
		}
		fnErr := fn()
		if err := setns(home); err != nil {
			// Stays locked: the thread ends with this goroutine.
			errc <- errors.Join(fnErr, fmt.Errorf("setns back to the host namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// onThisThread runs fn with the calling thread, which must be locked to
// its goroutine (the spawn thread is), inside the namespace; a child forked
// by fn starts there. The thread is switched back before it returns.
func (n *NetNS) onThisThread(fn func() error) error {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer func() { _ = home.Close() }()
	target, err := os.Open(n.path)
	if err != nil {
		return err
	}
	err = setns(target)
	_ = target.Close()
	if err != nil {
		return fmt.Errorf("setns %s: %w", n.path, err)
	}
	fnErr := fn()
	if err := setns(home); err != nil {
		// The spawn thread would start later children in the namespace.
		panic(fmt.Sprintf("setns back to the host namespace: %v", err))
	}
	return fnErr
}

func setns(f *os.File) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// sysSetns is setns(2)'s number: the syscall package does not name it, and
// golang.org/x/sys is not a direct requirement of the module.
var sysSetns = map[string]uintptr{
	"amd64": 308, "arm64": 268, "riscv64": 268, "loong64": 268, "386": 346, "arm": 375, "ppc64le": 350, "s390x": 339,
}[runtime.GOARCH]

// DialContext dials addr from inside the namespace: use it as a
// rest.Config's Dial or an http.Transport's DialContext.
func (n *NetNS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Process is a command running in the namespace.
type Process struct {
	Name    string
	Argv    []string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	stop    sync.Once
}

// ProcessOptions tune Start.
type ProcessOptions struct {
	// Env is the whole environment of the process (nil: the test's).
	Env []string
	// Dir is its working directory (inside Root when Root is set).
	Dir string
	// Root, when set, is the root folder the process runs in (chroot, as
	// a container's): argv[0] is a path inside it.
	Root string
	// Credential, when set, is the user, group and supplementary groups
	// the process runs as (set after the chroot, before the exec).
	Credential *syscall.Credential
}

// spawn runs fn on one OS thread that stays locked for the life of the test
// binary. Children get Pdeathsig SIGKILL, which fires when the thread that
// forked them ends: forking from this thread means "when the test binary
// dies" (a go test timeout, a kill), never earlier.
var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

func spawn(fn func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range spawnCh {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { fn(); close(done) }
	<-done
}

// Start runs argv inside the namespace (`ip netns exec NAME argv...`, which
// execs argv, so the PID is argv's), its output to logDir/name.log. It is
// stopped when the test ends (Stop), and its log tail is written to the
// test log if the test failed.
func (n *NetNS) Start(t testing.TB, logDir, name string, opts ProcessOptions, argv ...string) *Process {
	t.Helper()
	p, err := n.StartProcess(logDir, name, opts, argv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("----- %s (pid %d): last lines of %s -----\n%s", name, p.Pid(), p.LogPath, p.Tail(40))
		}
	})
	return p
}

// StartProcess is Start without the test: the caller stops the process.
func (n *NetNS) StartProcess(logDir, name string, opts ProcessOptions, argv ...string) (*Process, error) {
	p := &Process{Name: name, Argv: argv, LogPath: filepath.Join(logDir, name+".log"), exited: make(chan struct{})}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	// Its own process group; killed with the test binary if that dies.
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := func() error { return p.cmd.Start() }
	if opts.Root == "" && opts.Credential == nil {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	} else {
		// `ip netns exec` would have to exist in the new root: fork from
		// the spawn thread switched into the namespace instead, chroot and
		// drop to the credential in the child.
		p.cmd = &exec.Cmd{Path: argv[0], Args: argv}
		attr.Chroot, attr.Credential = opts.Root, opts.Credential
		start = func() error { return n.onThisThread(p.cmd.Start) }
	}
	p.cmd.SysProcAttr = attr
	p.cmd.Env = opts.Env
	p.cmd.Dir = opts.Dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	spawn(func() { err = start() })
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process's PID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitErr is how the process ended (nil while it runs or after exit 0).
func (p *Process) ExitErr() error {
	select {
	case <-p.exited:
		return p.exitErr
	default:
		return nil
	}
}

// Stop sends SIGTERM to the process (its PID; it leads its own process
// group, which gets the signal too), then SIGKILL after 10s. Safe to call
// more than once.
func (p *Process) Stop(t testing.TB) {
	p.StopWith(t.Logf)
}

// StopWith is Stop that reports through logf.
func (p *Process) StopWith(logf func(string, ...any)) {
	p.stop.Do(func() {
		if !p.Alive() {
			return
		}
		pid := p.Pid()
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			logf("%s (pid %d) did not stop within 10s of SIGTERM; killing it", p.Name, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.exited
		}
	})
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	lines := bytes.Split(bytes.TrimRight([]byte(p.Log()), "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))) + "\n"
}

// Run runs argv to completion inside the namespace and returns its
// combined output.
func (n *NetNS) Run(ctx context.Context, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var err error
	spawn(func() { err = cmd.Start() })
	if err == nil {
		err = cmd.Wait()
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s: no answer in time: %w", argv[0], ctx.Err())
	}
	return out.String(), err
}
