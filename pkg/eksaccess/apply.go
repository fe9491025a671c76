package eksaccess

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
)

// Apply executes the plan's operations in order and returns those done.
// It stops at the first failure, so that an entry is never deleted when
// the one replacing it could not be made; the error says which operation
// failed. Every entry written to is forgotten from the cache.
func (c *Client) Apply(ctx context.Context, p *accessentries.Plan) ([]accessentries.Op, error) {
	var done []accessentries.Op
	for _, op := range p.Ops {
		err := c.apply(ctx, op)
		c.Forget(op.PrincipalARN)
		if err != nil {
			return done, fmt.Errorf("%s %s: %w", op.Action, op.PrincipalARN, err)
		}
		done = append(done, op)
	}
	return done, nil
}

func (c *Client) apply(ctx context.Context, op accessentries.Op) error {
	switch op.Action {
	case accessentries.ActionAdopt:
		arn := c.entryARN(op.PrincipalARN)
		if arn == "" {
			return fmt.Errorf("the entry's ARN is unknown (it was not read in this pass)")
		}
		_, err := c.api.TagResource(ctx, &eks.TagResourceInput{ResourceArn: aws.String(arn), Tags: ownershipTags(op.Desired)})
		return err
	case accessentries.ActionCreate:
		return c.create(ctx, op.Desired, false)
	case accessentries.ActionRecreate:
		if _, err := c.api.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(op.PrincipalARN)}); err != nil {
			return err
		}
		return c.create(ctx, op.Desired, true)
	case accessentries.ActionUpdate:
		d := op.Desired
		in := &eks.UpdateAccessEntryInput{ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(d.PrincipalARN),
			KubernetesGroups: append([]string{}, d.Groups...)} // an empty list clears the groups
		if d.Username != "" {
			in.Username = aws.String(d.Username)
		}
		_, err := c.api.UpdateAccessEntry(ctx, in)
		return err
	case accessentries.ActionAssociate:
		return c.associate(ctx, op.PrincipalARN, *op.Policy)
	case accessentries.ActionDisassociate:
		_, err := c.api.DisassociateAccessPolicy(ctx, &eks.DisassociateAccessPolicyInput{ClusterName: aws.String(c.cluster),
			PrincipalArn: aws.String(op.PrincipalARN), PolicyArn: aws.String(c.policyARN(op.Policy.Policy))})
		return err
	case accessentries.ActionDelete:
		_, err := c.api.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(op.PrincipalARN)})
		return err
	}
	return fmt.Errorf("unknown action %q", op.Action)
}

func ownershipTags(d *accessentries.Desired) map[string]string {
	tags := map[string]string{accessentries.ManagedTag: accessentries.ManagedTagValue}
	if d != nil && d.PermissionSet != "" {
		tags[accessentries.PermissionSetTag] = d.PermissionSet
	}
	return tags
}

// create makes the entry, tagged as managed; withPolicies also associates
// its policies (a recreated entry has none left; a created one gets them
// from the plan's own associate operations).
func (c *Client) create(ctx context.Context, d *accessentries.Desired, withPolicies bool) error {
	in := &eks.CreateAccessEntryInput{ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(d.PrincipalARN),
		Type: aws.String(d.Type), Tags: ownershipTags(d)}
	if !accessentries.IsNodeType(d.Type) {
		if d.Username != "" {
			in.Username = aws.String(d.Username)
		}
		if len(d.Groups) > 0 {
			in.KubernetesGroups = d.Groups
		}
	}
	if _, err := c.api.CreateAccessEntry(ctx, in); err != nil {
		return err
	}
	if withPolicies {
		for _, a := range d.Policies {
			if err := c.associate(ctx, d.PrincipalARN, a); err != nil {
				return fmt.Errorf("associating %s: %w", a.Policy, err)
			}
		}
	}
	return nil
}

func (c *Client) associate(ctx context.Context, principal string, a accessentries.Association) error {
	scope := &types.AccessScope{Type: types.AccessScopeTypeCluster}
	if a.Namespaces != nil {
		scope = &types.AccessScope{Type: types.AccessScopeTypeNamespace, Namespaces: a.Namespaces}
	}
	_, err := c.api.AssociateAccessPolicy(ctx, &eks.AssociateAccessPolicyInput{ClusterName: aws.String(c.cluster),
		PrincipalArn: aws.String(principal), PolicyArn: aws.String(c.policyARN(a.Policy)), AccessScope: scope})
	return err
}
