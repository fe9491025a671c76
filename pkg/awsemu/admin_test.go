package awsemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The admin API drives a separate emulator process; the SDK sees its effects.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{})
	client := iam.NewFromConfig(cfg)

	call := func(method, path, body string, wantStatus int) string {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
		}
		return string(b)
	}

	call("PUT", "/_emulator/roles", `[
		{"name": "AWSReservedSSO_Admin_0123456789abcdef", "path": "/aws-reserved/sso.amazonaws.com/"},
		{"name": "plain", "roleId": "AROAPLAINROLE00000001", "createDate": "2024-01-02T03:04:05Z"}
	]`, 204)
	var roles []struct{ Name, Path, RoleID, Arn, CreateDate string }
	if err := json.Unmarshal([]byte(call("GET", "/_emulator/roles", "", 200)), &roles); err != nil {
		t.Fatal(err)
	}
	if len(roles) != 2 || roles[0].Name != "plain" || roles[0].RoleID != "AROAPLAINROLE00000001" ||
		roles[0].CreateDate != "2024-01-02T03:04:05Z" || roles[1].Arn != "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef" {
		t.Errorf("GET roles = %+v", roles)
	}
	call("PUT", "/_emulator/roles", `[{"path": "/"}]`, 400)
	call("PUT", "/_emulator/roles", `{`, 400)

	newName := strings.TrimSpace(call("POST", "/_emulator/rotate?permissionSet=Admin", "", 200))
	if _, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(newName)}); err != nil {
		t.Errorf("rotated role %q: %v", newName, err)
	}
	call("POST", "/_emulator/rotate?permissionSet=Nope", "", 404)
	call("POST", "/_emulator/rotate", "", 400)

	var calls map[string]int
	if err := json.Unmarshal([]byte(call("GET", "/_emulator/calls", "", 200)), &calls); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls["iam:GetRole"] != 1 {
		t.Errorf("calls = %v, want only iam:GetRole once (admin requests are not counted)", calls)
	}
	call("DELETE", "/_emulator/calls", "", 204)
	if n := len(s.AllCalls()); n != 0 {
		t.Errorf("%d counters after DELETE", n)
	}

	call("POST", "/_emulator/faults", `{"action": "sts:GetCallerIdentity", "code": "Throttling", "message": "slow down", "delayMs": 10, "times": 1}`, 204)
	_, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.RetryMaxAttempts = 1 }).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	apiError(t, err, "Throttling", 400)
	call("POST", "/_emulator/faults", `{"action": "iam:*", "code": "InternalFailure"}`, 204)
	call("POST", "/_emulator/faults", `{"code": "InternalFailure"}`, 400)
	call("DELETE", "/_emulator/faults", "", 204)
	if _, err := client.ListRoles(t.Context(), &iam.ListRolesInput{}); err != nil {
		t.Errorf("after DELETE faults: %v", err)
	}

	call("GET", "/_emulator/nope", "", 404)
	call("POST", "/_emulator/roles", "", 404)
}
