package awsauth

import (
	"fmt"
	"regexp"
	"strings"
)

// AccountIDPlaceholder in a rolearn or userarn stands for the cluster's
// account ID; render replaces it.
const AccountIDPlaceholder = "$ACCOUNTID"

// knownPartitions are the AWS partitions an IAM ARN can name.
var knownPartitions = map[string]bool{
	"aws": true, "aws-cn": true, "aws-us-gov": true,
	"aws-iso": true, "aws-iso-b": true, "aws-iso-e": true, "aws-iso-f": true,
	"aws-eusc": true,
}

var (
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// IAM role and user names: 1-64 characters of [\w+=,.@-].
	iamNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	// Permission set names: 1-32 characters of the same set.
	permissionSetPattern = regexp.MustCompile(`^[\w+=,.@-]{1,32}$`)
	// IAM paths: "/" or "/a/b/" of printable ASCII without spaces.
	iamPathPattern = regexp.MustCompile(`^/([\x21-\x7e]+/)*$`)
)

// iamARN is an IAM principal ARN split into the parts the authenticator
// cares about.
type iamARN struct {
	Partition string
	Account   string
	Kind      string // "role", "user" or "root"
	Path      string // "/" when none
	Name      string
}

// Canonical is the form the authenticator compares against: for roles,
// arn:<partition>:iam::<account>:role/<name> without the path; users keep
// theirs (STS reports a user's ARN with its path).
func (a iamARN) Canonical() string {
	switch a.Kind {
	case "root":
		return fmt.Sprintf("arn:%s:iam::%s:root", a.Partition, a.Account)
	case "role":
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", a.Partition, a.Account, a.Name)
	}
	return fmt.Sprintf("arn:%s:iam::%s:%s%s%s", a.Partition, a.Account, a.Kind, a.Path, a.Name)
}

// identityKey is how duplicates are found: lowercased, path stripped. IAM
// names are unique in an account whatever their path.
func (a iamARN) identityKey() string {
	if a.Kind == "root" {
		return strings.ToLower(a.Canonical())
	}
	return strings.ToLower(fmt.Sprintf("arn:%s:iam::%s:%s/%s", a.Partition, a.Account, a.Kind, a.Name))
}

// arnError is a parse failure with the fix a person needs.
type arnError struct {
	msg, hint string
}

func (e *arnError) Error() string { return e.msg }

// parseIAMARN parses an IAM role, user or root ARN. When allowPlaceholder is
// set, the account may be $ACCOUNTID (lint checks documents before render
// fills it in).
func parseIAMARN(s string, allowPlaceholder bool) (iamARN, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return iamARN{}, &arnError{
			msg:  fmt.Sprintf("%q is not an ARN", s),
			hint: "write the full ARN, e.g. arn:aws:iam::111122223333:role/NAME",
		}
	}
	a := iamARN{Partition: parts[1], Account: parts[4]}
	service, region, resource := parts[2], parts[3], parts[5]
	if !knownPartitions[a.Partition] {
		return a, &arnError{
			msg:  fmt.Sprintf("%q names the unknown partition %q", s, a.Partition),
			hint: "use aws, aws-cn or aws-us-gov (the partition of the account)",
		}
	}
	if service == "sts" && strings.HasPrefix(resource, "assumed-role/") {
		role := strings.SplitN(strings.TrimPrefix(resource, "assumed-role/"), "/", 2)[0]
		return a, &arnError{
			msg:  fmt.Sprintf("%q is an STS assumed-role session ARN, which never matches a mapping", s),
			hint: fmt.Sprintf("map the role itself: arn:%s:iam::%s:role/%s", a.Partition, a.Account, role),
		}
	}
	if service != "iam" {
		return a, &arnError{
			msg:  fmt.Sprintf("%q is a %s ARN, not an IAM role or user ARN", s, service),
			hint: "use the IAM ARN, arn:<partition>:iam::<account>:role/NAME or :user/NAME",
		}
	}
	if region != "" {
		return a, &arnError{
			msg:  fmt.Sprintf("%q has a region; IAM ARNs have none", s),
			hint: fmt.Sprintf("write arn:%s:iam::%s:%s", a.Partition, a.Account, resource),
		}
	}
	if !(allowPlaceholder && a.Account == AccountIDPlaceholder) && !accountIDPattern.MatchString(a.Account) {
		return a, &arnError{
			msg:  fmt.Sprintf("%q has the malformed account ID %q", s, a.Account),
			hint: "an account ID is exactly 12 digits; write $ACCOUNTID for the cluster's own account",
		}
	}
	if resource == "root" {
		a.Kind, a.Path = "root", "/"
		return a, nil
	}
	slash := strings.IndexByte(resource, '/')
	if slash < 0 {
		return a, &arnError{
			msg:  fmt.Sprintf("%q has no role/ or user/ resource", s),
			hint: "write arn:<partition>:iam::<account>:role/NAME",
		}
	}
	a.Kind = resource[:slash]
	rest := resource[slash:] // "/path/name" or "/name"
	last := strings.LastIndexByte(rest, '/')
	a.Path, a.Name = rest[:last+1], rest[last+1:]
	if a.Kind != "role" && a.Kind != "user" {
		return a, &arnError{
			msg:  fmt.Sprintf("%q is an IAM %s ARN; only roles and users can be mapped", s, a.Kind),
			hint: "map the IAM role or user that people sign in with",
		}
	}
	if !iamNamePattern.MatchString(a.Name) || !iamPathPattern.MatchString(a.Path) {
		return a, &arnError{
			msg:  fmt.Sprintf("%q does not end in a valid IAM %s name", s, a.Kind),
			hint: "IAM names are 1-64 characters of letters, digits and +=,.@_-",
		}
	}
	return a, nil
}

// PrincipalKey returns the key under which the authenticator finds an ARN:
// lowercased, with a role's path dropped. It accepts the ARNs an identity
// presents — an IAM role, user or root ARN, or an STS assumed-role session
// ARN (which maps through its role) — and reports false for anything else.
func PrincipalKey(s string) (string, bool) {
	if a, err := parseIAMARN(s, false); err == nil {
		return a.identityKey(), true
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		role := strings.SplitN(strings.TrimPrefix(parts[5], "assumed-role/"), "/", 2)[0]
		return PrincipalKey(fmt.Sprintf("arn:%s:iam::%s:role/%s", parts[1], parts[4], role))
	}
	return "", false
}
