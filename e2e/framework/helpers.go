//go:build e2e

package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// KubectlOptions tune KubectlWith.
type KubectlOptions struct {
	// Stdin is fed to kubectl (for `apply -f -`, `replace -f -`).
	Stdin string
	// As impersonates a user (--as, --as-uid, --as-group, --as-user-extra).
	As *Identity
	// Timeout bounds the run; default 1m.
	Timeout time.Duration
}

// KubectlResult is what a kubectl run printed and how it exited.
type KubectlResult struct {
	Args     []string // the arguments after the kubeconfig flag
	Stdout   string
	Stderr   string
	ExitCode int
}

// String describes the run, for failure messages.
func (r KubectlResult) String() string {
	return fmt.Sprintf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// Kubectl runs the kubectl from the assets folder as the admin user. A
// non-zero exit is not a test failure (tests check refusals); failing to run
// kubectl at all is.
func (cp *ControlPlane) Kubectl(t testing.TB, args ...string) KubectlResult {
	t.Helper()
	return cp.KubectlWith(t, KubectlOptions{}, args...)
}

// KubectlWith is Kubectl with stdin, impersonation or a timeout.
func (cp *ControlPlane) KubectlWith(t testing.TB, opts KubectlOptions, args ...string) KubectlResult {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.As != nil {
		args = append(opts.As.KubectlArgs(), args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(cp.Assets, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig(t)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if opts.Stdin != "" {
		cmd.Stdin = strings.NewReader(opts.Stdin)
	}
	err := cmd.Run()
	res := KubectlResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("kubectl %s: no answer within %v\nstderr: %s", strings.Join(args, " "), opts.Timeout, res.Stderr)
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("running kubectl %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// StartEmulator starts the AWS emulator (IAM, STS, IMDS) on a random
// loopback port and closes it when the test ends. Point the real SDK at it
// with emu.AWSConfig(ctx), or a process with emu.Env().
func StartEmulator(t testing.TB, cfg awsemu.Config) *awsemu.Server {
	t.Helper()
	emu := awsemu.New(cfg)
	if err := emu.Start(); err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Cleanup(emu.Close)
	return emu
}

// WaitFor polls cond every 50ms until it reports true, failing the test
// when timeout passes first or cond returns an error (return false, nil
// for "not yet", including for errors worth retrying). Call it from the
// test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting: %v", err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Events lists the Events regarding the object ns/name (any kind), oldest
// first, through events.k8s.io/v1. core/v1 Events are the same objects
// (kubectl get events and kubectl describe show them too).
func (cp *ControlPlane) Events(t testing.TB, ns, name string) []eventsv1.Event {
	t.Helper()
	list, err := cp.Clientset.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing Events in %s: %v", ns, err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && (e.Regarding.Namespace == ns || e.Regarding.Namespace == "") {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(out[i]).Before(eventTime(out[j])) })
	return out
}

func eventTime(e eventsv1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	if !e.DeprecatedFirstTimestamp.IsZero() {
		return e.DeprecatedFirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}
