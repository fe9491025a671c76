package awsauth

import "context"

// Account identifies the AWS account the cluster runs in. Both fields come
// from STS GetCallerIdentity; nothing here assumes the "aws" partition.
type Account struct {
	Partition string // aws, aws-cn, aws-us-gov, ...
	ID        string // 12 digits
}

// PermissionSetLookup is the answer to one PermissionSetRoles call.
type PermissionSetLookup struct {
	// ARNs maps each requested permission set that has a role in the account
	// to that role's canonical ARN (arn:<partition>:iam::<account>:role/<name>,
	// no path).
	ARNs map[string]string
	// Existing lists every permission set that has a role in the account, so
	// an error about an unknown name can say which ones do exist. A
	// resolver may leave it out when every name asked for has a role.
	Existing []string
	// Ambiguous lists, for each requested permission set that more than one
	// SSO role claims (the same permission set provisioned through two
	// Identity Center regions' paths), every claiming role's ARN, sorted;
	// ARNs holds the one picked.
	Ambiguous map[string][]string
	// Stale is non-nil when IAM could not be asked and the answer was served
	// from the last known state; it says why.
	Stale error
}

// Resolver answers the AWS questions the engine has. The engine asks each
// question at most once per call and only when the document needs it, so a
// document without permission sets or $ACCOUNTID makes no AWS call at all.
type Resolver interface {
	// Account returns the cluster's partition and account ID.
	Account(ctx context.Context) (Account, error)
	// PermissionSetRoles resolves permission-set names to SSO role ARNs.
	// A name missing from the answer's ARNs does not exist, unless err is
	// non-nil: then IAM could not be asked and the missing names are unknown,
	// not wrong.
	PermissionSetRoles(ctx context.Context, names []string) (PermissionSetLookup, error)
}
