package accessentries

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// Ownership tags. Every entry this tool creates carries ManagedTag; it
// never updates, deletes or re-associates an entry without it, unless told
// to adopt it. PermissionSetTag records the permission set an entry was
// made for, so that a moved suffix is recognised as a move.
const (
	ManagedTag       = "aws-auth-webhook/managed-by"
	ManagedTagValue  = "aws-auth-webhook"
	PermissionSetTag = "aws-auth-webhook/permission-set"
)

// Current is an access entry as the cluster has it.
type Current struct {
	PrincipalARN string
	Type         string
	Username     string
	Groups       []string
	Tags         map[string]string
	CreatedAt    time.Time
	Policies     []Association
}

// Managed reports whether the entry carries the ownership tag.
func (c Current) Managed() bool { return c.Tags[ManagedTag] == ManagedTagValue }

// Action is what an operation does.
type Action string

const (
	// ActionAdopt tags an existing, unmanaged entry as managed (--adopt).
	ActionAdopt Action = "adopt"
	// ActionCreate creates an entry (its policies follow as associations).
	ActionCreate Action = "create"
	// ActionUpdate changes an entry's username or groups.
	ActionUpdate Action = "update"
	// ActionAssociate associates a policy, or changes its scope.
	ActionAssociate Action = "associate"
	// ActionDisassociate removes a policy from an entry.
	ActionDisassociate Action = "disassociate"
	// ActionRecreate deletes an entry and creates it again: the type
	// cannot change in place, and an entry bound to a deleted role works
	// again only once created anew.
	ActionRecreate Action = "recreate"
	// ActionDelete deletes a managed entry.
	ActionDelete Action = "delete"
)

// Op is one step of a Plan.
type Op struct {
	Action       Action `json:"action"`
	PrincipalARN string `json:"principalArn"`
	// Desired is the entry to create, update or recreate.
	Desired *Desired `json:"desired,omitempty"`
	// Policy is the association to make (associate) or the policy to
	// remove (disassociate).
	Policy *Association `json:"policy,omitempty"`
	// Reason says why, for people: which aws-auth entry asks for it and
	// what differs.
	Reason string `json:"reason"`
	// Repair says which repair this is: "moved" (a permission set's role
	// got a new suffix), "role-recreated" (the role was deleted and
	// created again after the entry) or "" for neither.
	Repair string `json:"repair,omitempty"`
}

// String is the one-line form that plan and apply print.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %s", o.Action, o.PrincipalARN)
	if o.Policy != nil {
		fmt.Fprintf(&b, " %s (%s)", o.Policy.Policy, o.Policy.Scope())
	}
	if d := o.Desired; d != nil && (o.Action == ActionCreate || o.Action == ActionRecreate || o.Action == ActionUpdate) {
		fmt.Fprintf(&b, " type=%s", d.Type)
		if d.Username != "" {
			fmt.Fprintf(&b, " username=%s", d.Username)
		}
		if len(d.Groups) > 0 {
			fmt.Fprintf(&b, " groups=%s", strings.Join(d.Groups, ","))
		}
	}
	fmt.Fprintf(&b, ": %s", o.Reason)
	return b.String()
}

// Left is an entry the plan leaves alone, and why.
type Left struct {
	PrincipalARN string `json:"principalArn"`
	Reason       string `json:"reason"`
}

// Plan is the ordered list of operations that makes the cluster's access
// entries match aws-auth, and what it leaves alone.
type Plan struct {
	Ops []Op `json:"operations"`
	// Untranslatable lists the aws-auth entries with no access-entry
	// equivalent.
	Untranslatable []Untranslatable `json:"untranslatable"`
	// Conflicts are entries aws-auth asks for whose principal already has
	// an entry without the ownership tag: left alone unless adopted.
	Conflicts []Left `json:"conflicts"`
	// Unmanaged are entries not in aws-auth and not tagged as managed:
	// never touched.
	Unmanaged []Left `json:"unmanaged"`
}

// Options tune Diff.
type Options struct {
	// Adopt takes over unmanaged entries that aws-auth asks for: they are
	// tagged and then kept like the entries created here.
	Adopt bool
}

// Repairs counts the plan's repairs by kind.
func (p *Plan) Repairs() map[string]int {
	out := map[string]int{}
	for _, o := range p.Ops {
		if o.Repair != "" {
			out[o.Repair]++
		}
	}
	return out
}

// Repair kinds of Op.Repair.
const (
	RepairMoved         = "moved"
	RepairRoleRecreated = "role-recreated"
)

// Diff compares the desired entries with the current ones and returns the
// plan. The order never leaves a principal without access that it had: an
// entry that replaces another (a permission set's new role) is created,
// with its policies, before the one it replaces is deleted; an entry is
// re-associated before a policy is taken from it; and deletions come last.
func Diff(desired []Desired, untranslatable []Untranslatable, current []Current, opts Options) *Plan {
	p := &Plan{Untranslatable: untranslatable}
	if p.Untranslatable == nil {
		p.Untranslatable = []Untranslatable{}
	}
	byARN := make(map[string]Current, len(current))
	for _, c := range current {
		byARN[c.PrincipalARN] = c
	}
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.PrincipalARN] = true
	}
	// Principals of untranslatable entries keep whatever entry they have:
	// deleting it would take access that aws-auth still grants.
	keep := map[string]string{} // by identity (lowercased, path dropped)
	for _, u := range untranslatable {
		if k, ok := awsauth.IdentityKey(u.PrincipalARN); ok {
			keep[k] = u.Source
		}
	}
	// New principals of permission sets and roles, to tell a move from a
	// removal when the old entry is deleted.
	replacedBy := map[string]Desired{} // identity (permission set or role key) -> desired
	for _, d := range desired {
		for _, id := range identities(d.PrincipalARN, d.PermissionSet) {
			replacedBy[id] = d
		}
	}

	var adopts, creates, changes, recreates, deletes []Op
	for _, d := range desired {
		cur, exists := byARN[d.PrincipalARN]
		if !exists {
			reason := fmt.Sprintf("%s has no access entry yet", d.Source)
			repair := ""
			if old := replacedEntry(d, current, wanted); old != "" {
				reason = fmt.Sprintf("%s: the role is now %s (was %s); the old entry is deleted once this one exists", d.Source, d.PrincipalARN, old)
				if d.PermissionSet != "" {
					reason = fmt.Sprintf("%s: the permission set was re-provisioned, its role is now %s (was %s); the old entry is deleted once this one exists", d.Source, roleName(d.PrincipalARN), roleName(old))
				}
				repair = RepairMoved
			}
			creates = append(creates, Op{Action: ActionCreate, PrincipalARN: d.PrincipalARN, Desired: &d, Reason: reason, Repair: repair})
			for _, a := range d.Policies {
				creates = append(creates, Op{Action: ActionAssociate, PrincipalARN: d.PrincipalARN, Policy: &a,
					Reason: fmt.Sprintf("%s asks for %s", d.Source, policyReason(a))})
			}
			continue
		}
		if !cur.Managed() {
			if !opts.Adopt {
				p.Conflicts = append(p.Conflicts, Left{PrincipalARN: d.PrincipalARN,
					Reason: fmt.Sprintf("%s asks for this principal, but its access entry was not created by aws-auth-webhook (no %s tag); it is left alone (--adopt takes it over)", d.Source, ManagedTag)})
				continue
			}
			adopts = append(adopts, Op{Action: ActionAdopt, PrincipalARN: d.PrincipalARN, Desired: &d,
				Reason: fmt.Sprintf("%s asks for this principal and --adopt takes its existing entry over", d.Source)})
		}
		switch {
		case cur.Type != d.Type:
			recreates = append(recreates, Op{Action: ActionRecreate, PrincipalARN: d.PrincipalARN, Desired: &d,
				Reason: fmt.Sprintf("%s asks for a %s entry; the entry is %s, and the type of an entry cannot change in place", d.Source, d.Type, cur.Type)})
			continue
		case !d.RoleCreated.IsZero() && !cur.CreatedAt.IsZero() && d.RoleCreated.After(cur.CreatedAt):
			recreates = append(recreates, Op{Action: ActionRecreate, PrincipalARN: d.PrincipalARN, Desired: &d, Repair: RepairRoleRecreated,
				Reason: fmt.Sprintf("%s: the role was created at %s, after its entry (%s): the entry is bound to the deleted role and grants nothing until created again",
					d.Source, d.RoleCreated.UTC().Format(time.RFC3339), cur.CreatedAt.UTC().Format(time.RFC3339))})
			continue
		}
		if !IsNodeType(d.Type) {
			var diffs []string
			if d.Username != "" && cur.Username != d.Username {
				diffs = append(diffs, fmt.Sprintf("username %q -> %q", cur.Username, d.Username))
			}
			groups := slices.Clone(cur.Groups)
			sort.Strings(groups)
			if !slices.Equal(groups, d.Groups) && (len(groups) > 0 || len(d.Groups) > 0) {
				diffs = append(diffs, fmt.Sprintf("groups [%s] -> [%s]", strings.Join(groups, ","), strings.Join(d.Groups, ",")))
			}
			if len(diffs) > 0 {
				changes = append(changes, Op{Action: ActionUpdate, PrincipalARN: d.PrincipalARN, Desired: &d,
					Reason: fmt.Sprintf("%s: %s", d.Source, strings.Join(diffs, ", "))})
			}
			changes = append(changes, policyOps(d, cur)...)
		}
	}

	for _, c := range current {
		if wanted[c.PrincipalARN] {
			continue
		}
		k, _ := awsauth.IdentityKey(c.PrincipalARN)
		if src, ok := keep[k]; ok && k != "" {
			p.Unmanaged = append(p.Unmanaged, Left{PrincipalARN: c.PrincipalARN,
				Reason: fmt.Sprintf("%s cannot be translated (see untranslatable), so its entry is left as it is", src)})
			continue
		}
		if !c.Managed() {
			p.Unmanaged = append(p.Unmanaged, Left{PrincipalARN: c.PrincipalARN,
				Reason: "not created by aws-auth-webhook and not in aws-auth; never touched"})
			continue
		}
		reason, repair := "no aws-auth entry maps this principal any more", ""
		for _, id := range identities(c.PrincipalARN, c.Tags[PermissionSetTag]) {
			if d, ok := replacedBy[id]; ok {
				repair = RepairMoved
				reason = fmt.Sprintf("replaced by the entry for %s (%s)", d.PrincipalARN, d.Source)
				if d.PermissionSet != "" {
					reason = fmt.Sprintf("permission set %s was re-provisioned: replaced by the entry for its new role %s", d.PermissionSet, roleName(d.PrincipalARN))
				}
				break
			}
		}
		deletes = append(deletes, Op{Action: ActionDelete, PrincipalARN: c.PrincipalARN, Reason: reason, Repair: repair})
	}

	p.Ops = slices.Concat(adopts, creates, changes, recreates, deletes)
	if p.Conflicts == nil {
		p.Conflicts = []Left{}
	}
	if p.Unmanaged == nil {
		p.Unmanaged = []Left{}
	}
	if p.Ops == nil {
		p.Ops = []Op{}
	}
	return p
}

// policyOps associates what is missing or scoped differently, then
// disassociates what aws-auth no longer asks for.
func policyOps(d Desired, cur Current) []Op {
	var ops []Op
	have := map[string]Association{}
	for _, a := range cur.Policies {
		have[a.Policy] = a
	}
	for _, a := range d.Policies {
		h, ok := have[a.Policy]
		switch {
		case !ok:
			ops = append(ops, Op{Action: ActionAssociate, PrincipalARN: d.PrincipalARN, Policy: &a,
				Reason: fmt.Sprintf("%s asks for %s", d.Source, policyReason(a))})
		case !h.equal(a):
			ops = append(ops, Op{Action: ActionAssociate, PrincipalARN: d.PrincipalARN, Policy: &a,
				Reason: fmt.Sprintf("%s: scope of %s %s -> %s", d.Source, a.Policy, h.Scope(), a.Scope())})
		}
	}
	var extra []string
	for name := range have {
		if !slices.ContainsFunc(d.Policies, func(a Association) bool { return a.Policy == name }) {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		a := have[name]
		ops = append(ops, Op{Action: ActionDisassociate, PrincipalARN: d.PrincipalARN, Policy: &a,
			Reason: fmt.Sprintf("%s no longer asks for %s", d.Source, a.Policy)})
	}
	return ops
}

func policyReason(a Association) string {
	if a.Policy == awsauth.ClusterAdminPolicy && a.Namespaces == nil {
		return a.Policy + " at cluster scope (system:masters, or accessPolicies)"
	}
	return fmt.Sprintf("%s (%s)", a.Policy, a.Scope())
}

// replacedEntry returns the principal of a managed entry that d replaces
// (same permission set, or same role under another path), or "".
func replacedEntry(d Desired, current []Current, wanted map[string]bool) string {
	ids := identities(d.PrincipalARN, d.PermissionSet)
	for _, c := range current {
		if wanted[c.PrincipalARN] || !c.Managed() {
			continue
		}
		for _, id := range identities(c.PrincipalARN, c.Tags[PermissionSetTag]) {
			if slices.Contains(ids, id) {
				return c.PrincipalARN
			}
		}
	}
	return ""
}

// identities are the keys under which two principals are "the same" for
// a repair: the role without its path (a role moved to another path), and
// the permission set (a new suffix).
func identities(principal, permissionSet string) []string {
	var out []string
	if k, ok := awsauth.IdentityKey(principal); ok {
		out = append(out, "principal/"+k)
	}
	if permissionSet == "" {
		permissionSet = ssoPermissionSet(roleName(principal))
	}
	if permissionSet != "" {
		out = append(out, "permissionset/"+permissionSet)
	}
	return out
}

// roleName is the last part of an ARN's resource.
func roleName(arn string) string {
	return arn[strings.LastIndexByte(arn, '/')+1:]
}

// ssoPermissionSet returns the permission set of an IAM Identity Center
// role name (AWSReservedSSO_<name>_<suffix>, suffix cut from the right), or "".
func ssoPermissionSet(role string) string {
	rest, ok := strings.CutPrefix(role, "AWSReservedSSO_")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return ""
	}
	return rest[:i]
}

// Cluster authentication modes (DescribeCluster accessConfig). In
// CONFIG_MAP only aws-auth is read and the access entry API is off; in
// API_AND_CONFIG_MAP both are read and an access entry wins over aws-auth
// for the same principal; in API aws-auth is not read at all.
const (
	AuthModeConfigMap       = "CONFIG_MAP"
	AuthModeAPIAndConfigMap = "API_AND_CONFIG_MAP"
	AuthModeAPI             = "API"
)
