package awsidentity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// SSORolePathPrefix is the IAM path under which IAM Identity Center creates
// one role per permission set assigned to the account (plus "<region>/" when
// the identity source is not in us-east-1).
const SSORolePathPrefix = "/aws-reserved/sso.amazonaws.com/"

// ssoRoleNamePrefix starts every role IAM Identity Center creates.
const ssoRoleNamePrefix = "AWSReservedSSO_"

// ParseSSORoleName splits an IAM Identity Center role name
// "AWSReservedSSO_<PermissionSet>_<suffix>" into its permission set and
// suffix. The suffix is taken off the RIGHT end (after the last underscore),
// because permission-set names may themselves contain "_" (and "+=,.@-").
// ok is false when roleName is not shaped like an SSO role.
func ParseSSORoleName(roleName string) (permissionSet, suffix string, ok bool) {
	rest, found := strings.CutPrefix(roleName, ssoRoleNamePrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	permissionSet, suffix = rest[:i], rest[i+1:]
	if !validNameChars(permissionSet) || !isAlnum(suffix) {
		return "", "", false
	}
	return permissionSet, suffix, true
}

// ValidPermissionSetName reports whether name is a legal IAM Identity Center
// permission-set name: 1–32 characters of [A-Za-z0-9_+=,.@-].
func ValidPermissionSetName(name string) bool {
	return len(name) >= 1 && len(name) <= 32 && validNameChars(name)
}

// validNameChars reports whether s is non-empty and made only of the
// characters IAM allows in role and permission-set names: [\w+=,.@-].
func validNameChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_+=,.@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// CanonicalRoleARN builds the ARN the aws-iam-authenticator compares
// against: arn:<partition>:iam::<account>:role/<name>, without any IAM path.
func CanonicalRoleARN(partition, accountID, roleName string) string {
	return arn.ARN{
		Partition: partition,
		Service:   "iam",
		AccountID: accountID,
		Resource:  "role/" + roleName,
	}.String()
}

// CanonicalizeRoleARN validates s as an IAM role ARN and returns it in
// canonical form (path stripped), with the role name and whether a path was
// removed. It rejects anything that is not an IAM role ARN (users, STS
// assumed-role ARNs, instance profiles, ...).
func CanonicalizeRoleARN(s string) (canonical, roleName string, pathStripped bool, err error) {
	a, err := arn.Parse(s)
	if err != nil {
		return "", "", false, fmt.Errorf("not an ARN: %w", err)
	}
	if a.Partition == "" {
		return "", "", false, errors.New("ARN has no partition")
	}
	if a.Service != "iam" {
		return "", "", false, fmt.Errorf("not an IAM role ARN (service is %q, want \"iam\")", a.Service)
	}
	if a.Region != "" {
		return "", "", false, fmt.Errorf("IAM ARNs have no region, got %q", a.Region)
	}
	if !isAccountID(a.AccountID) {
		return "", "", false, fmt.Errorf("account ID %q is not 12 digits", a.AccountID)
	}
	rest, ok := strings.CutPrefix(a.Resource, "role/")
	if !ok {
		return "", "", false, fmt.Errorf("not an IAM role ARN (resource %q does not start with \"role/\")", a.Resource)
	}
	roleName = rest
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		roleName = rest[i+1:]
		pathStripped = true
	}
	if !validNameChars(roleName) || len(roleName) > 64 {
		return "", "", false, fmt.Errorf("invalid role name %q", roleName)
	}
	return CanonicalRoleARN(a.Partition, a.AccountID, roleName), roleName, pathStripped, nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
