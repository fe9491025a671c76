package awsidentity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// Access entries need two facts aws-auth does not: a role's ARN WITH its
// IAM path (EKS checks principalArn against IAM), and its CreateDate (an
// entry made before the role was recreated is bound to the old role). The
// SSO listing already carries both for every IAM Identity Center role; any
// other role is asked for with iam:GetRole, cached like the listing.

type roleFact struct {
	arn     string
	created time.Time
}

// getRoleAnswer is a cached iam:GetRole answer; found is false for
// NoSuchEntity (cached for NegativeTTL only).
type getRoleAnswer struct {
	fact    roleFact
	found   bool
	expires time.Time
}

// RoleFacts returns the IAM facts of roles given by their canonical ARN
// (arn:P:iam::A:role/NAME, any case, as accessentries.RolesNeeded lists
// them). A role IAM does not have is absent from the answer. IAM Identity
// Center roles come from the newest SSO listing (listed again when older
// than the TTL); others from iam:GetRole, cached for the TTL. The error is
// non-nil when IAM could not be asked.
func (r *Resolver) RoleFacts(ctx context.Context, canonical []string) (accessentries.RoleFacts, error) {
	out := accessentries.RoleFacts{}
	var listing *listing
	for _, c := range canonical {
		account, name, ok := splitRoleARN(c)
		if !ok {
			continue
		}
		key := strings.ToLower(c)
		// The name may come lowercased (accessentries.RolesNeeded keys roles
		// as the authenticator does); IAM names are case-insensitive.
		if strings.HasPrefix(strings.ToLower(name), strings.ToLower(iamarn.SSORoleNamePrefix)) {
			if listing == nil {
				l, err := r.freshListing(ctx)
				if err != nil {
					return nil, err
				}
				listing = l
			}
			if f, ok := listing.facts[strings.ToLower(name)]; ok && accountOfARN(f.arn) == account {
				out[key] = accessentries.RoleFact{ARN: f.arn, Created: f.created}
				continue
			}
			// Not under the SSO path (or created since the listing):
			// GetRole knows.
		}
		f, found, err := r.getRole(ctx, name)
		if err != nil {
			return nil, err
		}
		if found && accountOfARN(f.arn) == account {
			out[key] = accessentries.RoleFact{ARN: f.arn, Created: f.created}
		}
	}
	return out, nil
}

// freshListing returns the newest SSO listing, walking IAM again when it
// is older than the TTL (or there is none).
func (r *Resolver) freshListing(ctx context.Context) (*listing, error) {
	if l := r.last.Load(); l != nil && r.opts.Clock.Now().Before(l.fetchedAt.Add(r.opts.TTL)) {
		return l, nil
	}
	return r.list(ctx, r.last.Load(), false)
}

// getRole asks iam:GetRole, or the cache.
func (r *Resolver) getRole(ctx context.Context, name string) (roleFact, bool, error) {
	key := strings.ToLower(name)
	now := r.opts.Clock.Now()
	if a, ok := r.roles.Get(key); ok && now.Before(a.expires) {
		return a.fact, a.found, nil
	}
	v, err, _ := r.flights.Do("iam:GetRole/"+key, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.CallTimeout)
		defer cancel()
		out, err := r.iam.GetRole(cctx, &iam.GetRoleInput{RoleName: aws.String(name)})
		var missing *types.NoSuchEntityException
		switch {
		case errors.As(err, &missing):
			a := getRoleAnswer{found: false, expires: r.opts.Clock.Now().Add(r.opts.NegativeTTL)}
			r.roles.Add(key, a)
			return a, nil
		case err != nil:
			return nil, fmt.Errorf("iam:GetRole %s: %w", name, withLastAnswer(cctx, err, &r.lastIAMErr, "IAM"))
		}
		a := getRoleAnswer{found: true, expires: r.opts.Clock.Now().Add(r.opts.TTL),
			fact: roleFact{arn: aws.ToString(out.Role.Arn), created: aws.ToTime(out.Role.CreateDate)}}
		r.roles.Add(key, a)
		return a, nil
	})
	if err != nil {
		return roleFact{}, false, err
	}
	a := v.(getRoleAnswer)
	return a.fact, a.found, nil
}

// splitRoleARN returns the account and name of arn:P:iam::A:role/[path/]NAME.
func splitRoleARN(s string) (account, name string, ok bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[2] != "iam" || !strings.HasPrefix(strings.ToLower(parts[5]), "role/") {
		return "", "", false
	}
	return parts[4], parts[5][strings.LastIndexByte(parts[5], '/')+1:], true
}

func accountOfARN(s string) string {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return parts[4]
}
