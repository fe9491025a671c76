package awsemu

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Env alone is enough: a process with only these variables set and the
// SDK's default configuration talks to the emulator. Not parallel: Setenv.
func TestEnvPointsTheSDKHere(t *testing.T) {
	s := New(Config{Region: "eu-central-1", NodeRoleName: "node", Roles: []Role{{Name: "r"}}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // only the service-specific variables may win
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	env := s.Env()
	if !strings.HasSuffix(env["AWS_EC2_METADATA_SERVICE_ENDPOINT"], "/") {
		t.Errorf("IMDS endpoint %q lacks the trailing slash", env["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
	}
	for k, v := range env {
		t.Setenv(k, v)
	}

	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-central-1" {
		t.Errorf("region %s", cfg.Region)
	}
	if _, err := iam.NewFromConfig(cfg).ListRoles(t.Context(), &iam.ListRolesInput{}); err != nil {
		t.Errorf("IAM: %v", err)
	}
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("STS: %v", err)
	}
	if name, err := getMetadata(t, imds.NewFromConfig(cfg), "iam/security-credentials/"); err != nil || name != "node" {
		t.Errorf("IMDS: %q, %v", name, err)
	}
	// At least one: without AWSConfig's workaround (see avoidBodyCloseRace) the
	// SDK may rarely retry a request.
	for _, a := range []string{"iam:ListRoles", "sts:GetCallerIdentity", "imds:iam/security-credentials/"} {
		if s.Calls(a) == 0 {
			t.Errorf("no %s call reached the emulator", a)
		}
	}
}

// Unknown Query actions are told apart by the SigV4 scope or the API
// version, counted, and refused as IAM does.
func TestUnknownQueryAction(t *testing.T) {
	t.Parallel()
	s, _ := startEmulator(t, Config{})
	post := func(form url.Values, auth string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL()+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	scope := "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"
	if code := post(url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}}, scope); code != 400 {
		t.Errorf("AssumeRole: %d", code)
	}
	if code := post(url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}}, ""); code != 400 {
		t.Errorf("CreateRole: %d", code)
	}
	if code := post(url.Values{"Version": {"2010-05-08"}}, ""); code != 400 {
		t.Errorf("no Action: %d", code)
	}
	wantCalls(t, s, "sts:AssumeRole", 1)
	wantCalls(t, s, "iam:CreateRole", 1)
}
