package awsemu

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

func TestSSORole(t *testing.T) {
	t.Parallel()
	for region, wantPath := range map[string]string{
		"":          "/aws-reserved/sso.amazonaws.com/",
		"us-east-1": "/aws-reserved/sso.amazonaws.com/",
		"eu-west-1": "/aws-reserved/sso.amazonaws.com/eu-west-1/",
	} {
		r := SSORole("Admin.Team+1", "0123456789abcdef", region)
		if r.Name != "AWSReservedSSO_Admin.Team+1_0123456789abcdef" || r.Path != wantPath {
			t.Errorf("SSORole(region %q) = %+v", region, r)
		}
	}
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	if a, b := RandomSuffix(), RandomSuffix(); !hex16.MatchString(a) || a == b {
		t.Errorf("RandomSuffix: %q, %q", a, b)
	}
}

func TestRotatePermissionSet(t *testing.T) {
	t.Parallel()
	admin := SSORole("Admin", "0123456789abcdef", "eu-west-1")
	readOnly := SSORole("Admin_ReadOnly", "fedcba9876543210", "eu-west-1")
	s, cfg := startEmulator(t, Config{Roles: []Role{admin, readOnly, {Name: "AWSReservedSSO_NotSSO_0123456789abcdef"}}})
	client := iam.NewFromConfig(cfg)

	newName, err := s.RotatePermissionSet("Admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(newName, "AWSReservedSSO_Admin_") || newName == admin.Name || len(newName) != len(admin.Name) {
		t.Errorf("new name %q", newName)
	}
	out, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(newName)})
	if err != nil {
		t.Fatal(err)
	}
	if *out.Role.Path != admin.Path {
		t.Errorf("path changed to %s", *out.Role.Path)
	}
	_, err = client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(admin.Name)})
	var nse *types.NoSuchEntityException
	if !errors.As(err, &nse) {
		t.Errorf("old role still there: %v", err)
	}
	// Exact permission set match: Admin_ReadOnly is another permission set.
	if _, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(readOnly.Name)}); err != nil {
		t.Errorf("Admin_ReadOnly role touched: %v", err)
	}

	if n, err := s.RotatePermissionSet("Admin_ReadOnly"); err != nil || !strings.HasPrefix(n, "AWSReservedSSO_Admin_ReadOnly_") {
		t.Errorf("rotate Admin_ReadOnly: %q, %v", n, err)
	}
	// A plain role shaped like an SSO one (wrong path), a prefix of a
	// permission set, and an unknown one are all errors.
	for _, ps := range []string{"NotSSO", "Adm", "Nope"} {
		if _, err := s.RotatePermissionSet(ps); err == nil {
			t.Errorf("rotating %q: no error", ps)
		}
	}
}
