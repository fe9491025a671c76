//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
)

// TestDemoCtrlCWithPipedOutput is `make demo | tee log` and Ctrl-C: the
// demo runs as a job of its own (a process group, as a terminal's
// foreground job is) with its output piped; Ctrl-C sends SIGINT to the
// whole job, and tee is gone at once (the pipe's reading end closes). Every
// child — the webhook, kube-apiserver and etcd, which envtest runs in
// process groups of their own where Ctrl-C does not reach — must be
// stopped before the demo prints anything more, and it must exit 0.
func TestDemoCtrlCWithPipedOutput(t *testing.T) {
	assets := framework.RequireAssets(t)
	webhook := framework.WebhookBinary(t)
	demo := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-tags", "e2e", "-o", demo, "./demo").CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}

	cmd := exec.Command(demo, "--bin", filepath.Dir(webhook))
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderrW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderrW.Close()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	// Stop reading once the demo says it is up: from then on the output is
	// piped into a reader that goes away at Ctrl-C, as tee does.
	up := make(chan error, 1)
	var printed bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Press Ctrl-C to stop everything") {
				up <- nil
				return
			}
		}
		up <- io.ErrUnexpectedEOF
	}()
	select {
	case err := <-up:
		if err != nil {
			t.Fatalf("the demo did not come up; it printed:\n%s", printed.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("the demo did not come up within 3 minutes; it printed:\n%s", printed.String())
	}

	children := descendants(cmd.Process.Pid)
	t.Cleanup(func() { // a demo that failed leaves nothing behind either
		for _, pid := range children {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	names := map[string]bool{}
	for _, pid := range children {
		names[processName(pid)] = true
	}
	for _, want := range []string{"etcd", "kube-apiserver", "aws-auth-webhook"} {
		if !names[want] {
			t.Fatalf("no %s among the demo's children %v (%v)", want, children, names)
		}
	}
	// envtest runs etcd and kube-apiserver in process groups of their own:
	// the SIGINT below does not reach them, only the demo can stop them.
	if g := processGroup(childNamed(children, "etcd")); g == cmd.Process.Pid {
		t.Logf("etcd runs in the demo's process group %d", g)
	}

	// What was still running when the demo first spoke after Ctrl-C.
	var mu sync.Mutex
	var aliveAtFirstWord []string
	spoke := make(chan string, 1)
	go func() {
		var all bytes.Buffer
		buf := make([]byte, 4096)
		first := true
		for {
			n, err := stderrR.Read(buf)
			if n > 0 && first {
				first = false
				mu.Lock()
				for _, pid := range children {
					if alive(pid) {
						aliveAtFirstWord = append(aliveAtFirstWord, processName(pid)+" "+strconv.Itoa(pid))
					}
				}
				mu.Unlock()
			}
			all.Write(buf[:n])
			if err != nil {
				spoke <- all.String()
				return
			}
		}
	}()

	stdout.Close() // tee is gone
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo did not stop within 2 minutes of Ctrl-C")
	}
	said := <-spoke
	if err != nil {
		t.Errorf("the demo exited with %v after Ctrl-C, want 0; stderr:\n%s", err, said)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(aliveAtFirstWord) > 0 {
		t.Errorf("the demo printed before stopping %v; stderr:\n%s", aliveAtFirstWord, said)
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("%s (pid %d) survived the demo", processName(pid), pid)
		}
	}
	if !strings.Contains(said, "stopped") {
		t.Errorf("the demo did not say it stopped everything; stderr:\n%s", said)
	}
	if !t.Failed() {
		t.Logf("Ctrl-C with the output piped: %d children stopped before the demo spoke, exit 0; it said: %s", len(children), strings.TrimSpace(said))
	}
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields := statFields(p); len(fields) > 2 {
			ppid, _ := strconv.Atoi(fields[2])
			parent[p] = ppid
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// statFields splits /proc/<pid>/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{s[:i+1]}, strings.Fields(s[i+1:])...)
}

// alive reports whether pid runs (a zombie, whose parent has not yet
// collected it, has stopped).
func alive(pid int) bool {
	f := statFields(pid)
	return len(f) > 1 && f[1] != "Z"
}

func processGroup(pid int) int {
	if f := statFields(pid); len(f) > 3 {
		g, _ := strconv.Atoi(f[3])
		return g
	}
	return 0
}

// processName is the base name of the program pid runs (comm is cut at 15
// characters; aws-auth-webhook has 16).
func processName(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(argv0)
}

func childNamed(pids []int, name string) int {
	for _, p := range pids {
		if processName(p) == name {
			return p
		}
	}
	return 0
}
