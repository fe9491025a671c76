package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// TestReadyzReportsTheIdentity: /readyz's identity check fails, with the
// reason, while the AWS identity cannot be read (STS refuses the
// credentials), and passes from the first probe after STS answers, through
// the real SDK against the emulator.
func TestReadyzReportsTheIdentity(t *testing.T) {
	emu := awsemu.New(awsemu.Config{AccountID: "111122223333"})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	cfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	emu.InjectFault("sts:GetCallerIdentity", awsemu.Fault{Code: "InvalidClientTokenId", HTTPStatus: 403, Message: "The security token included in the request is invalid"})
	resolver := awsidentity.New(cfg, awsidentity.Options{RetryMaxAttempts: 1})
	logs := &strings.Builder{}
	state := &identityState{accounts: resolver, log: funcr.New(func(prefix, args string) { logs.WriteString(args + "\n") }, funcr.Options{})}
	probe := func() error { return state.check(httptest.NewRequest("GET", "/readyz", nil)) }

	err = probe()
	if err == nil || !strings.Contains(err.Error(), "sts:GetCallerIdentity") || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("with STS refusing the credentials: %v, want a failure naming the call and the answer", err)
	}
	if err := probe(); err == nil {
		t.Fatal("the second probe passed")
	}
	if n := strings.Count(logs.String(), "not ready"); n != 1 || !strings.Contains(logs.String(), "InvalidClientTokenId") {
		t.Errorf("want the reason logged once:\n%s", logs)
	}
	emu.ClearFaults()
	if err := probe(); err != nil {
		t.Fatalf("with STS answering: %v", err)
	}
	// Remembered: a later STS outage does not take the replica out.
	emu.InjectFault("sts:GetCallerIdentity", awsemu.Fault{Code: "ServiceUnavailable", HTTPStatus: 503})
	if err := probe(); err != nil {
		t.Fatalf("after a success, with STS down: %v", err)
	}
}
