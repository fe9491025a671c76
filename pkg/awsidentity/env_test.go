package awsidentity

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// isolateEnv clears the AWS settings a developer machine may have, so only
// what the test sets applies. Tests using it cannot be parallel.
func isolateEnv(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
		"AWS_EC2_METADATA_DISABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
}

// The binary's path: LoadAWSConfig + the standard endpoint variables, no
// emulator-specific wiring at all.
func TestStandardEndpointEnvironment(t *testing.T) {
	s := startEmu(t, awsemu.Config{Partition: "aws-cn", Roles: trickyRoles, NodeRoleName: "eks-node"})
	isolateEnv(t)
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	cfg, err := LoadAWSConfig(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "cn-north-1" {
		t.Fatalf("region = %q, want AWS_REGION's", cfg.Region)
	}
	r := New(cfg, testOptions(nil))
	got := lookup(t, r, "Admin")
	if got["Admin"] != roleARN("aws-cn", "AWSReservedSSO_Admin_1111111111111111") {
		t.Fatalf("got %v", got)
	}
	nodes, err := r.NodeRoleARNs(context.Background(), nil)
	if err != nil || !slices.Equal(nodes, []string{roleARN("aws-cn", "eks-node")}) {
		t.Fatalf("NodeRoleARNs = %v, %v", nodes, err)
	}
	wantIAM(t, s, r, 1)
	wantSTS(t, s, r, 1)
	wantCalls(t, s, "imds:iam/security-credentials/", 1)
}

func TestLoadAWSConfigRegion(t *testing.T) {
	isolateEnv(t)
	cfg, err := LoadAWSConfig(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != DefaultRegion {
		t.Fatalf("no region anywhere: got %q, want %q", cfg.Region, DefaultRegion)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	if cfg, _ = LoadAWSConfig(context.Background(), ""); cfg.Region != "eu-west-1" {
		t.Fatalf("AWS_REGION ignored: %q", cfg.Region)
	}
	if cfg, _ = LoadAWSConfig(context.Background(), "cn-northwest-1"); cfg.Region != "cn-northwest-1" {
		t.Fatalf("explicit region ignored: %q", cfg.Region)
	}
}
