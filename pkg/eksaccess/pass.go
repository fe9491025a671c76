package eksaccess

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// Facts answers what IAM knows about roles (pkg/awsidentity.Resolver).
type Facts interface {
	RoleFacts(ctx context.Context, canonical []string) (accessentries.RoleFacts, error)
}

// Pass is what one plan (and apply) over the cluster found and did.
type Pass struct {
	// Mode is the cluster's authentication mode.
	Mode string
	// Plan is nil when the mode is CONFIG_MAP: the access entry API is off.
	Plan *accessentries.Plan
	// Done lists the operations applied (Sync only).
	Done []accessentries.Op
}

// Plan reads the cluster and returns the plan that makes its access
// entries match the mappings of res (a rendered, valid aws-auth). Entries
// answered from the cache that the plan would write to are described
// again, and the plan made anew from what they are now.
func (c *Client) Plan(ctx context.Context, res *awsauth.Result, facts Facts, opts accessentries.Options) (*Pass, error) {
	mode, err := c.AuthenticationMode(ctx)
	if err != nil {
		return nil, err
	}
	pass := &Pass{Mode: mode}
	if mode == accessentries.AuthModeConfigMap {
		return pass, nil
	}
	f, err := facts.RoleFacts(ctx, accessentries.RolesNeeded(res))
	if err != nil {
		return nil, fmt.Errorf("IAM role facts: %w", err)
	}
	desired, untranslatable := accessentries.Translate(res, f)
	obs, err := c.Observe(ctx)
	if err != nil {
		return nil, err
	}
	plan := accessentries.Diff(desired, untranslatable, obs.Entries, opts)
	var stale []string
	for _, op := range plan.Ops {
		if obs.FromCache[op.PrincipalARN] && !slices.Contains(stale, op.PrincipalARN) {
			stale = append(stale, op.PrincipalARN)
		}
	}
	if len(stale) > 0 {
		fresh, err := c.describe(ctx, stale)
		if err != nil {
			return nil, err
		}
		entries := slices.DeleteFunc(slices.Clone(obs.Entries), func(e accessentries.Current) bool { return slices.Contains(stale, e.PrincipalARN) })
		plan = accessentries.Diff(desired, untranslatable, append(entries, fresh...), opts)
	}
	pass.Plan = plan
	return pass, nil
}

// Sync plans and applies. The error of a failed operation comes with the
// operations done before it in Pass.Done.
func (c *Client) Sync(ctx context.Context, res *awsauth.Result, facts Facts, opts accessentries.Options) (*Pass, error) {
	pass, err := c.Plan(ctx, res, facts, opts)
	if err != nil || pass.Plan == nil || len(pass.Plan.Ops) == 0 {
		return pass, err
	}
	pass.Done, err = c.Apply(ctx, pass.Plan)
	return pass, err
}
