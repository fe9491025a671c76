package awsemu

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

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
	s, cfg := startEmulator(t, Config{})
	client := sts.NewFromConfig(cfg)

	// A delay longer than the caller's deadline: the call times out.
	s.InjectFault("sts:GetCallerIdentity", Fault{Delay: time.Minute, Code: "Throttling", Times: 1})
	start := time.Now()
	_, err := client.GetCallerIdentity(timeout(t, 500*time.Millisecond), &sts.GetCallerIdentityInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timed out after %v", d)
	}
	if n := s.Calls("sts:GetCallerIdentity"); n > 1 {
		t.Errorf("%d calls: retried after the deadline", n)
	}

	// A delay without a code: slow success.
	s.InjectFault("sts:GetCallerIdentity", Fault{Delay: 150 * time.Millisecond, Times: 1})
	start = time.Now()
	if _, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, want the 150ms delay", d)
	}
}

// Close does not wait for delayed answers.
func TestCloseCutsDelays(t *testing.T) {
	t.Parallel()
	s, _ := startEmulator(t, Config{})
	s.InjectFault("*", Fault{Delay: time.Minute})
	go func() {
		resp, err := http.Get(s.URL() + "/latest/api/token")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	for s.Calls("imds:api/token") == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a delayed request")
	}
}
