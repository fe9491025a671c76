package awsauth

import (
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// AccountIDPlaceholder in a rolearn or userarn stands for the cluster's
// account ID; render replaces it.
const AccountIDPlaceholder = "$ACCOUNTID"

// parseIAMARN parses an IAM role, user or root ARN with the project's one
// ARN parser. When allowPlaceholder is set, the account may be $ACCOUNTID
// (lint checks documents before render fills it in).
func parseIAMARN(s string, allowPlaceholder bool) (iamarn.Principal, error) {
	if allowPlaceholder {
		return iamarn.Parse(s, iamarn.AccountPlaceholder(AccountIDPlaceholder))
	}
	return iamarn.Parse(s)
}

// IdentityKey returns the key under which two entries map the same IAM
// role or user: lowercased, path dropped. It reports false for anything
// that is not an IAM role, user or root ARN.
func IdentityKey(s string) (string, bool) {
	a, err := iamarn.Parse(s)
	if err != nil {
		return "", false
	}
	return a.IdentityKey(), true
}
