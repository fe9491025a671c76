package awsemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

func getMetadata(t *testing.T, c *imds.Client, path string) (string, error) {
	t.Helper()
	out, err := c.GetMetadata(t.Context(), &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	return string(b), err
}

func TestIMDS(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{Partition: "aws-us-gov", AccountID: "123456789012", NodeRoleName: "eks-node-role", InstanceProfileName: "eks-node-profile"})
	c := imds.NewFromConfig(cfg)

	name, err := getMetadata(t, c, "iam/security-credentials/")
	if err != nil || name != "eks-node-role" {
		t.Fatalf("security-credentials/ = %q, %v", name, err)
	}
	doc, err := getMetadata(t, c, "iam/security-credentials/eks-node-role")
	if err != nil {
		t.Fatal(err)
	}
	var creds struct{ Code, AccessKeyId, SecretAccessKey, Token, Expiration string }
	if err := json.Unmarshal([]byte(doc), &creds); err != nil || creds.Code != "Success" || creds.AccessKeyId == "" || creds.Token == "" {
		t.Errorf("credentials document %s: %v", doc, err)
	}
	if _, err := getMetadata(t, c, "iam/security-credentials/other-role"); httpStatus(err) != 404 {
		t.Errorf("credentials of another role: %v, want 404", err)
	}

	info, err := c.GetIAMInfo(t.Context(), &imds.GetIAMInfoInput{})
	if err != nil || info.InstanceProfileArn != "arn:aws-us-gov:iam::123456789012:instance-profile/eks-node-profile" {
		t.Errorf("iam/info = %+v, %v", info, err)
	}
	if region, err := getMetadata(t, c, "placement/region"); err != nil || region != "us-gov-west-1" {
		t.Errorf("placement/region = %q, %v", region, err)
	}
	// The SDK's GetRegion reads the identity document.
	region, err := c.GetRegion(t.Context(), &imds.GetRegionInput{})
	if err != nil || region.Region != "us-gov-west-1" {
		t.Errorf("GetRegion = %+v, %v", region, err)
	}
	ident, err := c.GetInstanceIdentityDocument(t.Context(), &imds.GetInstanceIdentityDocumentInput{})
	if err != nil || ident.Region != "us-gov-west-1" || ident.AccountID != "123456789012" {
		t.Errorf("identity document = %+v, %v", ident, err)
	}
	if _, err := getMetadata(t, c, "no/such/key"); httpStatus(err) != 404 {
		t.Errorf("unknown key: %v, want 404", err)
	}

	// The client fetched one token and reused it.
	wantCalls(t, s, "imds:api/token", 1)
	wantCalls(t, s, "imds:iam/security-credentials/", 1)
	wantCalls(t, s, "imds:iam/info", 1)
	wantCalls(t, s, "imds:placement/region", 1)
	wantCalls(t, s, "imds:dynamic/instance-identity/document", 2)

	s.SetNodeRole("replacement-role")
	if name, err := getMetadata(t, c, "iam/security-credentials/"); err != nil || name != "replacement-role" {
		t.Errorf("after SetNodeRole: %q, %v", name, err)
	}
}

func TestIMDSNoNodeRole(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{})
	c := imds.NewFromConfig(cfg)
	for _, path := range []string{"iam/security-credentials/", "iam/info"} {
		if _, err := getMetadata(t, c, path); httpStatus(err) != 404 {
			t.Errorf("%s without a node role: %v, want HTTP 404", path, err)
		}
	}
	if _, err := c.GetIAMInfo(t.Context(), &imds.GetIAMInfoInput{}); httpStatus(err) != 404 {
		t.Errorf("GetIAMInfo without a node role: %v, want HTTP 404", err)
	}

	s.SetNodeRole("late-role")
	if name, err := getMetadata(t, c, "iam/security-credentials/"); err != nil || name != "late-role" {
		t.Errorf("after SetNodeRole: %q, %v", name, err)
	}
	// InstanceProfileName follows the node role when not configured.
	info, err := c.GetIAMInfo(t.Context(), &imds.GetIAMInfoInput{})
	if err != nil || !strings.HasSuffix(info.InstanceProfileArn, ":instance-profile/late-role") {
		t.Errorf("iam/info = %+v, %v", info, err)
	}
}

// IMDSv2 is required: no token, a wrong token or a token request without a
// TTL are refused, as on an instance with HttpTokens=required.
func TestIMDSRequiresToken(t *testing.T) {
	t.Parallel()
	s, _ := startEmulator(t, Config{NodeRoleName: "node"})
	credsURL := s.URL() + "/latest/meta-data/iam/security-credentials/"

	do := func(method, url string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := do("GET", credsURL, nil); code != 401 {
		t.Errorf("GET without token: %d, want 401", code)
	}
	if code, _ := do("GET", credsURL, map[string]string{"X-aws-ec2-metadata-token": "forged"}); code != 401 {
		t.Errorf("GET with a forged token: %d, want 401", code)
	}
	tokenURL := s.URL() + "/latest/api/token"
	if code, _ := do("PUT", tokenURL, nil); code != 400 {
		t.Errorf("PUT token without TTL: %d, want 400", code)
	}
	if code, _ := do("GET", tokenURL, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}); code != 405 {
		t.Errorf("GET token: %d, want 405", code)
	}
	code, token := do("PUT", tokenURL, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code != 200 || token == "" {
		t.Fatalf("PUT token: %d %q", code, token)
	}
	if code, body := do("GET", credsURL, map[string]string{"X-aws-ec2-metadata-token": token}); code != 200 || body != "node" {
		t.Errorf("GET with token: %d %q", code, body)
	}
	wantCalls(t, s, "imds:iam/security-credentials/", 3)
}
