package iamarn

import (
	"strings"
	"testing"
)

func TestParseSSORoleName(t *testing.T) {
	tests := []struct {
		role       string
		ps, suffix string
		ok         bool
	}{
		{"AWSReservedSSO_Admin_0123456789abcdef", "Admin", "0123456789abcdef", true},
		// The suffix comes off the right end; the permission set keeps its
		// own underscores.
		{"AWSReservedSSO_Admin_ReadOnly_0123456789abcdef", "Admin_ReadOnly", "0123456789abcdef", true},
		{"AWSReservedSSO_a_b_c_d_fedcba9876543210", "a_b_c_d", "fedcba9876543210", true},
		{"AWSReservedSSO_Dev+Ops_0123456789abcdef", "Dev+Ops", "0123456789abcdef", true},
		{"AWSReservedSSO_Admin.Ops_0123456789abcdef", "Admin.Ops", "0123456789abcdef", true},
		{"AWSReservedSSO_a=b,c@d-e_f_0123456789abcdef", "a=b,c@d-e_f", "0123456789abcdef", true},
		{"AWSReservedSSO__x_0123456789abcdef", "_x", "0123456789abcdef", true},
		// Regex metacharacters are just characters.
		{"AWSReservedSSO_.*_0123456789abcdef", "", "", false}, // '*' is not legal in IAM names
		{"AWSReservedSSO_a.b_0123456789abcdef", "a.b", "0123456789abcdef", true},

		{"AWSReservedSSO_Admin", "", "", false},             // no suffix
		{"AWSReservedSSO_Admin_", "", "", false},            // empty suffix
		{"AWSReservedSSO__0123456789abcdef", "", "", false}, // empty permission set
		{"AWSReservedSSO_", "", "", false},
		{"AWSReservedSSOAdmin_0123456789abcdef", "", "", false},
		{"awsreservedsso_Admin_0123456789abcdef", "", "", false},
		{"MyRole", "", "", false},
		{"AWSReservedSSO_Admin_01234567-9abcdef", "", "", false}, // suffix must be alphanumeric
		{"", "", "", false},
	}
	for _, tt := range tests {
		ps, sfx, ok := ParseSSORoleName(tt.role)
		if ps != tt.ps || sfx != tt.suffix || ok != tt.ok {
			t.Errorf("ParseSSORoleName(%q) = %q, %q, %v; want %q, %q, %v", tt.role, ps, sfx, ok, tt.ps, tt.suffix, tt.ok)
		}
	}
}

// A name is never used as a pattern: asking for "Admin" must only ever match
// the role whose parsed permission set is exactly "Admin".
func TestParseSSORoleNameExactness(t *testing.T) {
	roles := []string{
		"AWSReservedSSO_Admin_1111111111111111",
		"AWSReservedSSO_Admin_ReadOnly_2222222222222222",
		"AWSReservedSSO_AdminX_3333333333333333",
		"AWSReservedSSO_Dev+Ops_4444444444444444",
		"AWSReservedSSO_DevOps_5555555555555555",
		"AWSReservedSSO_Admin.Ops_6666666666666666",
		"AWSReservedSSO_AdminXOps_7777777777777777",
		"AWSReservedSSO_a=b,c@d-e_f_8888888888888888",
		"AWSReservedSSO_a=b,c@d-e_9999999999999999",
	}
	want := map[string]string{
		"Admin":          "AWSReservedSSO_Admin_1111111111111111",
		"Admin_ReadOnly": "AWSReservedSSO_Admin_ReadOnly_2222222222222222",
		"Dev+Ops":        "AWSReservedSSO_Dev+Ops_4444444444444444",
		"DevOps":         "AWSReservedSSO_DevOps_5555555555555555",
		"Admin.Ops":      "AWSReservedSSO_Admin.Ops_6666666666666666",
		"a=b,c@d-e_f":    "AWSReservedSSO_a=b,c@d-e_f_8888888888888888",
		"a=b,c@d-e":      "AWSReservedSSO_a=b,c@d-e_9999999999999999",
	}
	for name, wantRole := range want {
		var got []string
		for _, r := range roles {
			if ps, _, ok := ParseSSORoleName(r); ok && ps == name {
				got = append(got, r)
			}
		}
		if len(got) != 1 || got[0] != wantRole {
			t.Errorf("%q matched %v, want only %s", name, got, wantRole)
		}
	}
}

func TestValidPermissionSetName(t *testing.T) {
	for _, ok := range []string{"Admin", "a", "a=b,c@d-e_f", "Dev+Ops", strings.Repeat("x", 32)} {
		if !ValidPermissionSetName(ok) {
			t.Errorf("ValidPermissionSetName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 33), "with space", "a/b", "a*", "ä"} {
		if ValidPermissionSetName(bad) {
			t.Errorf("ValidPermissionSetName(%q) = true", bad)
		}
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in, want, name string
		errPart        string
	}{
		{in: "arn:aws:iam::123456789012:role/NodeRole", want: "arn:aws:iam::123456789012:role/NodeRole", name: "NodeRole"},
		{in: "arn:aws:iam::123456789012:role/some/path/NodeRole", want: "arn:aws:iam::123456789012:role/NodeRole", name: "NodeRole"},
		{in: "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef",
			want: "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123456789abcdef", name: "AWSReservedSSO_Admin_0123456789abcdef"},
		{in: "arn:aws-cn:iam::123456789012:role/x/NodeRole", want: "arn:aws-cn:iam::123456789012:role/NodeRole", name: "NodeRole"},
		{in: "arn:aws-us-gov:iam::123456789012:role/NodeRole", want: "arn:aws-us-gov:iam::123456789012:role/NodeRole", name: "NodeRole"},
		{in: "arn:aws-eusc:iam::123456789012:role/NodeRole", want: "arn:aws-eusc:iam::123456789012:role/NodeRole", name: "NodeRole"},

		{in: "NodeRole", errPart: "not an ARN"},
		// The SDK's arn.Parse takes any partition; the authenticator does not.
		{in: "arn:aws-foo:iam::123456789012:role/NodeRole", errPart: `partition "aws-foo"`},
		{in: "arn::iam::123456789012:role/NodeRole", errPart: `partition ""`},
		{in: "arn:aws:iam::123456789012:user/alice", errPart: "not a role ARN"},
		{in: "arn:aws:iam::123456789012:instance-profile/NodeRole", errPart: "only roles and users"},
		{in: "arn:aws:sts::123456789012:assumed-role/NodeRole/i-0123", errPart: "assumed-role"},
		{in: "arn:aws:iam::12345:role/NodeRole", errPart: "account ID"},
		{in: "arn:aws:iam::$ACCOUNTID:role/NodeRole", errPart: "account ID"},
		{in: "arn:aws:iam:us-east-1:123456789012:role/NodeRole", errPart: "region"},
		{in: "arn:aws:iam::123456789012:role/", errPart: "role name"},
		{in: "arn:aws:iam::123456789012:role/path/", errPart: "role name"},
		{in: "arn:aws:iam::123456789012:role/Node\u200bRole", errPart: "U+200B ZERO WIDTH SPACE"},
		{in: "arn:aws:iam::123456789012:role/team x/NodeRole", errPart: "not a valid IAM path"},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if tt.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParseRole(%q) err = %v, want one containing %q", tt.in, err, tt.errPart)
			}
			continue
		}
		if err != nil || got.Canonical() != tt.want || got.Name != tt.name {
			t.Errorf("ParseRole(%q) = %+v, %v; want %q, %q", tt.in, got, err, tt.want, tt.name)
		}
	}
	if _, err := Parse("arn:aws:iam::$ACCOUNTID:role/a", AccountPlaceholder("$ACCOUNTID")); err != nil {
		t.Errorf("the placeholder is refused: %v", err)
	}
}

// TestCanonicalize mirrors aws-iam-authenticator's arn.Canonicalize: what
// a caller is matched by.
func TestCanonicalize(t *testing.T) {
	cases := map[string]string{
		"arn:aws:iam::111122223333:role/Admin":                           "arn:aws:iam::111122223333:role/Admin",
		"arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com": "arn:aws:iam::111122223333:role/Admin",
		"arn:aws-cn:iam::111122223333:user/team/Bob":                     "arn:aws-cn:iam::111122223333:user/team/Bob",
		"arn:aws:iam::111122223333:root":                                 "arn:aws:iam::111122223333:root",
		"arn:aws:sts::111122223333:federated-user/bob":                   "arn:aws:sts::111122223333:federated-user/bob",
	}
	for in, want := range cases {
		if got, err := Canonicalize(in); err != nil || got != want {
			t.Errorf("Canonicalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "admin", "arn:aws:s3:::bucket", "arn:aws-foo:iam::111122223333:role/x", "arn:aws:sts::111122223333:assumed-role/x"} {
		if got, err := Canonicalize(bad); err == nil {
			t.Errorf("Canonicalize(%q) = %q, accepted", bad, got)
		}
	}
}

func TestIdentityKey(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:iam::111122223333:role/Admin":                                  "arn:aws:iam::111122223333:role/admin",
		"arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/x/Admin": "arn:aws:iam::111122223333:role/admin",
		"arn:aws-cn:iam::111122223333:user/team/Bob":                            "arn:aws-cn:iam::111122223333:user/bob",
		"arn:aws:iam::111122223333:root":                                        "arn:aws:iam::111122223333:root",
	} {
		p, err := Parse(in)
		if err != nil || p.IdentityKey() != want {
			t.Errorf("IdentityKey(%q) = %q, %v; want %q", in, p.IdentityKey(), err, want)
		}
	}
}

func TestAccount(t *testing.T) {
	if p, a, err := Account("arn:aws-us-gov:sts::123456789012:assumed-role/x/y"); err != nil || p != "aws-us-gov" || a != "123456789012" {
		t.Errorf("got %q %q %v", p, a, err)
	}
	for _, bad := range []string{"arn:aws-foo:sts::123456789012:assumed-role/x/y", "arn:aws:sts::1234:assumed-role/x/y", "x"} {
		if _, _, err := Account(bad); err == nil {
			t.Errorf("Account(%q) accepted", bad)
		}
	}
}
