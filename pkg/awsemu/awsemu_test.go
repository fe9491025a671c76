package awsemu

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// startEmulator starts an emulator for the test and returns it with an SDK
// configuration pointing at it.
func startEmulator(t *testing.T, cfg Config) (*Server, aws.Config) {
	t.Helper()
	s := New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	awsCfg, err := s.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, awsCfg
}

// fastRetryer is the SDK's standard retryer (same error classification, same
// three attempts) without the seconds-long backoff.
func fastRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
	})
}

// apiError asserts that err is an AWS API error with code and HTTP status.
func apiError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v: want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Errorf("error code %q, want %q (%v)", ae.ErrorCode(), code, err)
	}
	if got := httpStatus(err); got != status {
		t.Errorf("HTTP status %d, want %d (%v)", got, status, err)
	}
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func wantCalls(t *testing.T, s *Server, action string, want int) {
	t.Helper()
	if got := s.Calls(action); got != want {
		t.Errorf("Calls(%q) = %d, want %d", action, got, want)
	}
}
