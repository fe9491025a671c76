package awsemu

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The SDK's default retryer (AWSConfig keeps it, backoff included) retries
// Throttling and then succeeds.
func TestFaultThrottlingRetried(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{Roles: []Role{{Name: "r"}}})
	s.InjectFault("iam:ListRoles", Fault{Code: "Throttling", Message: "Rate exceeded", Times: 2})

	out, err := iam.NewFromConfig(cfg).ListRoles(t.Context(), &iam.ListRolesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Roles) != 1 {
		t.Errorf("got %d roles, want 1", len(out.Roles))
	}
	wantCalls(t, s, "iam:ListRoles", 3)

	// Used up: the next call goes straight through.
	if _, err := iam.NewFromConfig(cfg).ListRoles(t.Context(), &iam.ListRolesInput{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, "iam:ListRoles", 4)
}

func TestFaultUnavailableUntilCleared(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{})
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Retryer = fastRetryer() })
	s.InjectFault("sts:GetCallerIdentity", Fault{Code: "ServiceUnavailable"})

	_, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	apiError(t, err, "ServiceUnavailable", 503)
	wantCalls(t, s, "sts:GetCallerIdentity", 3) // every attempt of the standard retryer

	s.ClearFaults()
	if _, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, "sts:GetCallerIdentity", 4)
}

func TestFaultWildcardAndStatus(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{Roles: []Role{{Name: "r"}}, NodeRoleName: "node"})
	noRetry := func(o *iam.Options) { o.RetryMaxAttempts = 1 }
	client := iam.NewFromConfig(cfg, noRetry)

	s.InjectFault("iam:*", Fault{Code: "AccessDenied", HTTPStatus: 403, Message: "not allowed", Times: 2})
	_, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String("r")})
	apiError(t, err, "AccessDenied", 403)
	_, err = client.ListRoles(t.Context(), &iam.ListRolesInput{})
	apiError(t, err, "AccessDenied", 403)
	if _, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String("r")}); err != nil {
		t.Errorf("after Times ran out: %v", err)
	}

	// IMDS faults are plain HTTP statuses.
	s.InjectFault("imds:iam/security-credentials/", Fault{Code: "InternalFailure", Times: 1})
	c := imds.NewFromConfig(cfg, func(o *imds.Options) { o.Retryer = aws.NopRetryer{} })
	if _, err := getMetadata(t, c, "iam/security-credentials/"); httpStatus(err) != 500 {
		t.Errorf("IMDS fault: %v, want HTTP 500", err)
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s, cfg := startEmulator(t, Config{Clock: clk})
	client := sts.NewFromConfig(cfg)

	// A delay longer than the caller waits: the caller gives up, and the
	// call is not retried.
	s.InjectFault("sts:GetCallerIdentity", Fault{Delay: time.Minute, Code: "Throttling", Times: 1})
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		errs <- err
	}()
	waitForDelay(clk)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the caller's cancellation", err)
	}
	if n := s.Calls("sts:GetCallerIdentity"); n != 1 {
		t.Errorf("%d calls: retried after the caller gave up", n)
	}
	for clk.HasWaiters() { // the held answer is dropped
		runtime.Gosched()
	}

	// A delay without a code: slow success, answered once the delay is up
	// and not before.
	s.InjectFault("sts:GetCallerIdentity", Fault{Delay: 150 * time.Millisecond, Times: 1})
	go func() {
		_, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		errs <- err
	}()
	waitForDelay(clk)
	clk.Step(149 * time.Millisecond)
	select {
	case err := <-errs:
		t.Fatalf("answered before the delay was up: %v", err)
	default:
	}
	clk.Step(time.Millisecond)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// waitForDelay returns once a request is held by a Fault.Delay. It spins
// without sleeping; the test's own timeout catches a hang.
func waitForDelay(clk *clocktesting.FakeClock) {
	for !clk.HasWaiters() {
		runtime.Gosched()
	}
}

// Close does not wait for delayed answers.
func TestCloseCutsDelays(t *testing.T) {
	t.Parallel()
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s, _ := startEmulator(t, Config{Clock: clk})
	s.InjectFault("*", Fault{Delay: time.Minute})
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		resp, err := http.Get(s.URL() + "/latest/api/token")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitForDelay(clk) // the request is held, the clock never moves
	s.Close()         // returns: it does not wait for the held answer
	<-answered
}
