//go:build e2e

package framework

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// IAMFaults serves IAM in front of the AWS emulator and switches IAM
// ListRoles faults atomically: the emulator's own faults are added and
// cleared one call at a time, so moving from one outage to another through
// them leaves a moment in which IAM answers. Here the current fault is
// handed to the emulator (as a one-call fault) for each ListRoles request
// as it arrives, so an outage of one kind turns into an outage of another
// kind with no good answer in between. The emulator still answers, counts,
// and applies the fault: only the choice of requests is made here.
type IAMFaults struct {
	emu   *awsemu.Server
	url   string
	fault atomic.Pointer[iamFault]
	// Injected counts the requests a fault was applied to.
	Injected atomic.Int64
}

type iamFault struct {
	f awsemu.Fault
	// laterPages: only requests that carry a Marker (page 2 and on) fail,
	// so that a listing breaks off half way.
	laterPages bool
}

// StartIAMFaults starts the front on a free loopback port; it stops with
// the test.
func StartIAMFaults(t testing.TB, emu *awsemu.Server) *IAMFaults {
	t.Helper()
	p := &IAMFaults{emu: emu}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed
	t.Cleanup(func() { srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

// Env points IAM (only) at the front; add it after emu.Env().
func (p *IAMFaults) Env() map[string]string {
	return map[string]string{"AWS_ENDPOINT_URL_IAM": p.url}
}

// Set makes every ListRoles request fail with f (f.Times is ignored) until
// the next Set or Clear.
func (p *IAMFaults) Set(f awsemu.Fault) { p.fault.Store(&iamFault{f: f}) }

// SetLaterPages makes ListRoles requests for page 2 and on fail with f:
// every listing gets its first page and then breaks.
func (p *IAMFaults) SetLaterPages(f awsemu.Fault) { p.fault.Store(&iamFault{f: f, laterPages: true}) }

// Clear ends the outage.
func (p *IAMFaults) Clear() { p.fault.Store(nil) }

func (p *IAMFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if f := p.fault.Load(); f != nil {
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "ListRoles" && (!f.laterPages || form.Get("Marker") != "") {
			one := f.f
			one.Times = 1
			p.emu.InjectFault("iam:ListRoles", one)
			p.Injected.Add(1)
		}
	}
	p.emu.Handler().ServeHTTP(w, r)
}
