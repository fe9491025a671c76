// Package iamarn is the one parser of IAM principal ARNs in this project:
// the engine (pkg/awsauth) judges aws-auth entries with it, the AWS
// lookups (pkg/awsidentity) read node roles, listed roles and the caller's
// account with it, and the --node-role-arn flags are checked with it at
// start. Two parsers used to disagree (the SDK's arn.Parse took partitions
// the engine refused), so a flag passed at start and every write failed.
//
// It follows aws-iam-authenticator (pkg/arn): the partitions are the ones
// it recognises, a role is matched without its IAM path, a user with it.
package iamarn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
)

// Partitions are the AWS partitions an IAM ARN can name: the list
// aws-iam-authenticator recognises (pkg/endpoints.PARTITIONS). An ARN in
// any other partition never authenticates.
var Partitions = []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}

// Kinds of principal an aws-auth entry can map.
const (
	KindRole = "role"
	KindUser = "user"
	KindRoot = "root"
)

// The character rules below are checked byte by byte rather than with
// regular expressions: they run for every entry of every request, and a
// regexp match was a tenth of the engine's time on a cached read.

// ValidAccountID reports whether s is a 12-digit AWS account ID.
func ValidAccountID(s string) bool {
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

// validNameOf reports whether s is 1 to max characters of [\w+=,.@-]
// (ASCII): the rule for IAM role and user names (64) and permission set
// names (32).
func validNameOf(s string, max int) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '+', c == '=', c == ',', c == '.', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// validPath reports whether s is an IAM path: "/" or "/a/b/" of printable
// ASCII without spaces (the regular expression ^/([\x21-\x7e]+/)*$).
func validPath(s string) bool {
	if s == "/" {
		return true
	}
	if len(s) < 3 || s[0] != '/' || s[len(s)-1] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Principal is an IAM principal ARN split into the parts the authenticator
// cares about.
type Principal struct {
	Partition string
	Account   string
	Kind      string // KindRole, KindUser or KindRoot
	Path      string // "/" when none
	Name      string
}

// Canonical is the form the authenticator compares against: for roles,
// arn:<partition>:iam::<account>:role/<name> without the path; users keep
// theirs (STS reports a user's ARN with its path).
func (p Principal) Canonical() string {
	switch p.Kind {
	case KindRoot:
		return fmt.Sprintf("arn:%s:iam::%s:root", p.Partition, p.Account)
	case KindRole:
		return RoleARN(p.Partition, p.Account, p.Name)
	}
	return fmt.Sprintf("arn:%s:iam::%s:%s%s%s", p.Partition, p.Account, p.Kind, p.Path, p.Name)
}

// IdentityKey names the IAM entity: lowercased, path dropped (IAM names
// are unique in an account whatever their path, and case-insensitively).
// Two entries with one key map the same role or user.
func (p Principal) IdentityKey() string {
	if p.Kind == KindRoot {
		return strings.ToLower(p.Canonical())
	}
	return strings.ToLower(fmt.Sprintf("arn:%s:iam::%s:%s/%s", p.Partition, p.Account, p.Kind, p.Name))
}

// RoleARN builds the ARN the authenticator compares a role against:
// arn:<partition>:iam::<account>:role/<name>, without any IAM path.
func RoleARN(partition, account, name string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, account, name)
}

// Error is a parse failure with the fix a person needs.
type Error struct {
	Msg, Hint string
}

func (e *Error) Error() string { return e.Msg }

// Option adjusts Parse.
type Option func(*options)

type options struct{ placeholder string }

// AccountPlaceholder lets the account be written as placeholder (the
// engine's $ACCOUNTID, which render fills in).
func AccountPlaceholder(placeholder string) Option {
	return func(o *options) { o.placeholder = placeholder }
}

// Parse parses an IAM role, user or root ARN.
func Parse(s string, opts ...Option) (Principal, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return Principal{}, &Error{
			Msg:  fmt.Sprintf("%q is not an ARN", s),
			Hint: "write the full ARN, e.g. arn:aws:iam::111122223333:role/NAME",
		}
	}
	p := Principal{Partition: parts[1], Account: parts[4]}
	service, region, resource := parts[2], parts[3], parts[5]
	if !slices.Contains(Partitions, p.Partition) {
		return p, &Error{
			Msg:  fmt.Sprintf("%q names the partition %q, which the EKS authenticator does not know (it knows %s)", s, p.Partition, strings.Join(Partitions, ", ")),
			Hint: "use the partition of the account: aws, aws-cn or aws-us-gov",
		}
	}
	if service == "sts" && strings.HasPrefix(resource, "assumed-role/") {
		role := strings.SplitN(strings.TrimPrefix(resource, "assumed-role/"), "/", 2)[0]
		return p, &Error{
			Msg:  fmt.Sprintf("%q is an STS assumed-role session ARN, which never matches a mapping", s),
			Hint: fmt.Sprintf("map the role itself: %s", RoleARN(p.Partition, p.Account, role)),
		}
	}
	if service != "iam" {
		return p, &Error{
			Msg:  fmt.Sprintf("%q is a %s ARN, not an IAM role or user ARN", s, service),
			Hint: "use the IAM ARN, arn:<partition>:iam::<account>:role/NAME or :user/NAME",
		}
	}
	if region != "" {
		return p, &Error{
			Msg:  fmt.Sprintf("%q has a region; IAM ARNs have none", s),
			Hint: fmt.Sprintf("write arn:%s:iam::%s:%s", p.Partition, p.Account, resource),
		}
	}
	if !(o.placeholder != "" && p.Account == o.placeholder) && !ValidAccountID(p.Account) {
		hint := "an account ID is exactly 12 digits"
		if o.placeholder != "" {
			hint += "; write " + o.placeholder + " for the cluster's own account"
		}
		return p, &Error{Msg: fmt.Sprintf("%q has the malformed account ID %q", s, p.Account), Hint: hint}
	}
	if resource == "root" {
		p.Kind, p.Path = KindRoot, "/"
		return p, nil
	}
	slash := strings.IndexByte(resource, '/')
	if slash < 0 {
		return p, &Error{
			Msg:  fmt.Sprintf("%q has no role/ or user/ resource", s),
			Hint: "write arn:<partition>:iam::<account>:role/NAME",
		}
	}
	p.Kind = resource[:slash]
	rest := resource[slash:] // "/path/name" or "/name"
	last := strings.LastIndexByte(rest, '/')
	p.Path, p.Name = rest[:last+1], rest[last+1:]
	if p.Kind != KindRole && p.Kind != KindUser {
		return p, &Error{
			Msg:  fmt.Sprintf("%q is an IAM %s ARN; only roles and users can be mapped", s, p.Kind),
			Hint: "map the IAM role or user that people sign in with",
		}
	}
	if !validNameOf(p.Name, 64) {
		return p, &Error{
			Msg:  fmt.Sprintf("%q does not end in a valid IAM %s name%s", s, p.Kind, firstIllegal(p.Name)),
			Hint: "IAM names are 1-64 characters of letters, digits and +=,.@_-",
		}
	}
	if !validPath(p.Path) {
		return p, &Error{
			Msg:  fmt.Sprintf("%q has the IAM path %q, which is not a valid IAM path%s", s, p.Path, firstIllegal(p.Path)),
			Hint: "IAM paths are /, or /a/b/ of printable ASCII without spaces",
		}
	}
	return p, nil
}

// firstIllegal names the first character of s that no IAM name or path may
// hold, for the message: " (it holds U+200B ZERO WIDTH SPACE)".
func firstIllegal(s string) string {
	for _, r := range s {
		if r > '~' || r <= ' ' {
			return fmt.Sprintf(" (it holds %s)", charcheck.Describe(r))
		}
	}
	return ""
}

// ParseRole parses an IAM role ARN (a path is allowed and kept in Path).
func ParseRole(s string) (Principal, error) {
	p, err := Parse(s)
	if err != nil {
		return p, err
	}
	if p.Kind != KindRole {
		return p, &Error{
			Msg:  fmt.Sprintf("%q is an IAM %s ARN, not a role ARN", s, p.Kind),
			Hint: "give the ARN of the IAM role: arn:<partition>:iam::<account>:role/NAME",
		}
	}
	return p, nil
}

// Canonicalize returns the ARN the authenticator matches a caller by, as
// aws-iam-authenticator's arn.Canonicalize computes it: an STS
// assumed-role session ARN becomes the ARN of its role (no path: STS never
// reports one), and IAM role, user and root ARNs and STS federated-user ARNs
// stay as they are. The authenticator then compares it, lowercased, with
// each mapping's ARN through strings.EqualFold.
func Canonicalize(s string) (string, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return "", &Error{Msg: fmt.Sprintf("%q is not an ARN", s)}
	}
	if !slices.Contains(Partitions, parts[1]) {
		return "", &Error{Msg: fmt.Sprintf("%q names the partition %q, which the EKS authenticator does not know", s, parts[1])}
	}
	resource := strings.Split(parts[5], "/")
	switch parts[2] + ":" + resource[0] {
	case "sts:assumed-role":
		if len(resource) < 3 {
			return "", &Error{Msg: fmt.Sprintf("%q is an assumed-role ARN without a role", s)}
		}
		return RoleARN(parts[1], parts[4], strings.Join(resource[1:len(resource)-1], "/")), nil
	case "sts:federated-user", "iam:role", "iam:user", "iam:root":
		return s, nil
	}
	return "", &Error{Msg: fmt.Sprintf("%q is not the ARN of an identity the authenticator maps", s)}
}

// Account reads the partition and account of any ARN whose account field
// is set (STS GetCallerIdentity's Arn is an assumed-role or user ARN).
func Account(s string) (partition, account string, err error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return "", "", &Error{Msg: fmt.Sprintf("%q is not an ARN", s)}
	}
	if !slices.Contains(Partitions, parts[1]) {
		return "", "", &Error{Msg: fmt.Sprintf("%q names the partition %q, which the EKS authenticator does not know (it knows %s)", s, parts[1], strings.Join(Partitions, ", "))}
	}
	if !ValidAccountID(parts[4]) {
		return "", "", &Error{Msg: fmt.Sprintf("%q has no 12-digit account ID", s)}
	}
	return parts[1], parts[4], nil
}

// SSO role names.

// SSORoleNamePrefix starts every role IAM Identity Center creates.
const SSORoleNamePrefix = "AWSReservedSSO_"

// ParseSSORoleName splits an IAM Identity Center role name
// "AWSReservedSSO_<PermissionSet>_<suffix>" into its permission set and
// suffix. The suffix is taken off the RIGHT end (after the last underscore),
// because permission-set names may themselves contain "_" (and "+=,.@-").
// ok is false when roleName is not shaped like an SSO role.
func ParseSSORoleName(roleName string) (permissionSet, suffix string, ok bool) {
	rest, found := strings.CutPrefix(roleName, SSORoleNamePrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	permissionSet, suffix = rest[:i], rest[i+1:]
	if !validNameOf(permissionSet, 64) || !isAlnum(suffix) {
		return "", "", false
	}
	return permissionSet, suffix, true
}

// ValidPermissionSetName reports whether name is a legal IAM Identity Center
// permission-set name: 1–32 characters of [A-Za-z0-9_+=,.@-].
func ValidPermissionSetName(name string) bool { return validNameOf(name, 32) }

// ValidName reports whether name is a legal IAM role or user name.
func ValidName(name string) bool { return validNameOf(name, 64) }

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
