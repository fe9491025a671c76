package awsidentity

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// imdsRolePath lists the role attached to the instance profile: one role
// NAME per line (no path, no account). "iam/info" describes the instance
// PROFILE instead and must not be mistaken for the role.
const imdsRolePath = "iam/security-credentials/"

// ErrNoNodeRole is wrapped by NodeRoleARNs' error when instance metadata
// answered but no IAM role is attached to the instance.
var ErrNoNodeRole = errors.New("no IAM role is attached to this EC2 instance")

// ErrIMDSUnreachable is wrapped by NodeRoleARNs' error when EC2 instance
// metadata could not be read at all.
var ErrIMDSUnreachable = errors.New("cannot read EC2 instance metadata (IMDS)")

// NodeRoleARNs returns the canonical ARNs of the node role(s).
//
// Explicit ARNs (from --node-role-arn) win: each is validated as an IAM role
// ARN and its path stripped; blanks are ignored, duplicates dropped. With
// none, the role NAME comes from IMDS iam/security-credentials/ (within
// Options.IMDSTimeout, at most 2 attempts) and the partition and account
// from Account(). Failures say what went wrong and how to fix it.
func (r *Resolver) NodeRoleARNs(ctx context.Context, explicit []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range explicit {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		c, err := CanonicalNodeRole(s)
		if err != nil {
			return nil, err
		}
		add(c)
	}
	if len(out) > 0 {
		return out, nil
	}

	names, err := r.imdsRoleNames(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := r.Account(ctx)
	if err != nil {
		return nil, fmt.Errorf("node role %q found in instance metadata, but its account is unknown: %w", names[0], err)
	}
	for _, n := range names {
		add(iamarn.RoleARN(acct.Partition, acct.ID, n))
	}
	return out, nil
}

// CanonicalNodeRole checks a --node-role-arn value with the project's one
// ARN parser (pkg/iamarn, the one the engine judges aws-auth with) and
// returns it without its IAM path. The error names the flag, what is wrong
// and the fix, so that serve and render refuse a bad flag at start.
func CanonicalNodeRole(s string) (string, error) {
	a, err := iamarn.ParseRole(strings.TrimSpace(s))
	if err != nil {
		msg := fmt.Sprintf("--node-role-arn %q: %v", s, err)
		var ae *iamarn.Error
		if errors.As(err, &ae) && ae.Hint != "" {
			msg += "; " + ae.Hint
		}
		return "", errors.New(msg)
	}
	return a.Canonical(), nil
}

const nodeRoleFix = "pods often cannot reach IMDS (hop limit 1); pass --node-role-arn"

func (r *Resolver) imdsRoleNames(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.IMDSTimeout)
	defer cancel()

	optFns := append([]func(*imds.Options){func(o *imds.Options) {
		// One retry at most, at most 100ms later: an unreachable IMDS must
		// fail fast, not hold startup through the SDK's default retries
		// (3 attempts, and the IMDS client's own 1s backoff cap, which
		// DisableDefaultMaxBackoff lets our 100ms cap replace).
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 2
			so.MaxBackoff = 100 * time.Millisecond
		})
		o.DisableDefaultMaxBackoff = true
	}}, r.imdsOptFns...)
	client := imds.NewFromConfig(r.cfg, optFns...)

	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: imdsRolePath})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return nil, fmt.Errorf("node role: %w (IMDS %s answered 404); attach an instance profile with a role to the node, or pass --node-role-arn",
				ErrNoNodeRole, imdsRolePath)
		}
		return nil, fmt.Errorf("node role: %w: %w; %s", ErrIMDSUnreachable, err, nodeRoleFix)
	}
	defer out.Content.Close()

	var names []string
	sc := bufio.NewScanner(io.LimitReader(out.Content, 64<<10))
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			if !iamarn.ValidName(n) {
				return nil, fmt.Errorf("node role: IMDS %s returned %q, which is not an IAM role name; pass --node-role-arn", imdsRolePath, n)
			}
			names = append(names, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("node role: %w: reading %s: %w; %s", ErrIMDSUnreachable, imdsRolePath, err, nodeRoleFix)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("node role: %w (IMDS %s is empty); attach an instance profile with a role to the node, or pass --node-role-arn",
			ErrNoNodeRole, imdsRolePath)
	}
	return names, nil
}
