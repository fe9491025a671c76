package awsidentity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

func TestRoleFacts(t *testing.T) {
	clock := newFakeClock()
	admin := awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1")
	admin.CreateDate = mustTime("2025-03-04T05:06:07Z")
	s := startEmu(t, awsemu.Config{AccountID: acct, Roles: []awsemu.Role{
		admin,
		{Name: "deployer", Path: "/ci/", CreateDate: mustTime("2025-01-01T00:00:00Z")},
	}})
	r := newResolver(t, s, testOptions(clock))
	ctx := context.Background()
	ask := []string{
		strings.ToLower(roleARN("aws", admin.Name)),
		roleARN("aws", "Deployer"), // any case: IAM role names are case-insensitive
		roleARN("aws", "gone"),
	}
	facts, err := r.RoleFacts(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	if f := facts[ask[0]]; f.ARN != "arn:aws:iam::"+acct+":role/aws-reserved/sso.amazonaws.com/eu-west-1/"+admin.Name || !f.Created.Equal(admin.CreateDate) {
		t.Errorf("SSO role facts %+v", f)
	}
	if f := facts[strings.ToLower(ask[1])]; f.ARN != "arn:aws:iam::"+acct+":role/ci/deployer" || !f.Created.Equal(mustTime("2025-01-01T00:00:00Z")) {
		t.Errorf("plain role facts %+v", f)
	}
	if _, ok := facts[strings.ToLower(ask[2])]; ok || len(facts) != 2 {
		t.Errorf("facts %+v", facts)
	}
	// SSO roles from one listing; the others from GetRole, one call each.
	wantCalls(t, s, "iam:ListRoles", 1)
	wantCalls(t, s, "iam:GetRole", 2)

	// Cached: no call at all.
	if _, err := r.RoleFacts(ctx, ask); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, "iam:ListRoles", 1)
	wantCalls(t, s, "iam:GetRole", 2)

	// The role is recreated: after the TTL the new CreateDate is seen.
	recreated, err := s.RecreateRole("deployer")
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(DefaultTTL + time.Second)
	facts, err = r.RoleFacts(ctx, ask[1:2])
	if err != nil {
		t.Fatal(err)
	}
	if f := facts[strings.ToLower(ask[1])]; !f.Created.Equal(recreated.CreateDate) {
		t.Errorf("after recreation: %+v, want created %v", f, recreated.CreateDate)
	}

	// IAM down: an error, never a role "missing".
	s.InjectFault("iam:GetRole", awsemu.Fault{Code: "ServiceUnavailable"})
	clock.Step(DefaultTTL + time.Second)
	if _, err := r.RoleFacts(ctx, ask[1:2]); err == nil || !strings.Contains(err.Error(), "iam:GetRole Deployer") {
		t.Errorf("want an iam:GetRole error, got %v", err)
	}
}
