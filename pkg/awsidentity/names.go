package awsidentity

// SSORolePathPrefix is the IAM path under which IAM Identity Center creates
// one role per permission set assigned to the account (plus "<region>/" when
// the identity source is not in us-east-1).
const SSORolePathPrefix = "/aws-reserved/sso.amazonaws.com/"
