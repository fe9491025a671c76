package accessentries

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	t0      = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	managed = map[string]string{ManagedTag: ManagedTagValue}
)

func actions(p *Plan) []string {
	var out []string
	for _, o := range p.Ops {
		s := string(o.Action) + " " + roleName(o.PrincipalARN)
		if o.Policy != nil {
			s += " " + o.Policy.Policy
		}
		out = append(out, s)
	}
	return out
}

func wantActions(t *testing.T, p *Plan, want ...string) {
	t.Helper()
	if got := actions(p); !slices.Equal(got, want) {
		t.Errorf("operations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func devDesired() Desired {
	return Desired{PrincipalARN: devRole, Type: TypeStandard, Username: "dev:{{SessionName}}", Groups: []string{"developers"},
		Policies: []Association{{Policy: "AmazonEKSViewPolicy"}}, Source: "mapRoles[0] (permissionset Dev)", PermissionSet: "Dev", RoleCreated: t0}
}

func devCurrent() Current {
	return Current{PrincipalARN: devRole, Type: TypeStandard, Username: "dev:{{SessionName}}", Groups: []string{"developers"},
		Tags: managed, CreatedAt: t0.Add(time.Minute), Policies: []Association{{Policy: "AmazonEKSViewPolicy"}}}
}

func TestDiffNothingToDo(t *testing.T) {
	node := Desired{PrincipalARN: nodeRole, Type: TypeEC2Linux, Source: "mapRoles[1]", RoleCreated: t0}
	// EKS reports system:nodes and the node username on a node entry:
	// they are not a difference.
	nodeCur := Current{PrincipalARN: nodeRole, Type: TypeEC2Linux, Username: usernameEC2Node, Groups: []string{"system:nodes"}, Tags: managed, CreatedAt: t0.Add(time.Second)}
	p := Diff([]Desired{devDesired(), node}, nil, []Current{devCurrent(), nodeCur}, Options{})
	wantActions(t, p)
	if len(p.Conflicts)+len(p.Unmanaged)+len(p.Untranslatable) != 0 {
		t.Errorf("plan %+v", p)
	}
}

func TestDiffCreatesWithPolicies(t *testing.T) {
	p := Diff([]Desired{devDesired()}, nil, nil, Options{})
	wantActions(t, p, "create AWSReservedSSO_Dev_1111111111111111", "associate AWSReservedSSO_Dev_1111111111111111 AmazonEKSViewPolicy")
	if !strings.Contains(p.Ops[0].Reason, "mapRoles[0] (permissionset Dev) has no access entry yet") {
		t.Errorf("reason %q", p.Ops[0].Reason)
	}
}

func TestDiffUpdatesAndReassociates(t *testing.T) {
	d := devDesired()
	d.Groups = []string{"developers", "oncall"}
	d.Policies = []Association{{Policy: "AmazonEKSEditPolicy", Namespaces: []string{"team-a"}}, {Policy: "AmazonEKSViewPolicy", Namespaces: []string{"prod"}}}
	cur := devCurrent()
	cur.Policies = append(cur.Policies, Association{Policy: "AmazonEKSAdminPolicy"})
	p := Diff([]Desired{d}, nil, []Current{cur}, Options{})
	wantActions(t, p,
		"update AWSReservedSSO_Dev_1111111111111111",
		"associate AWSReservedSSO_Dev_1111111111111111 AmazonEKSEditPolicy",
		"associate AWSReservedSSO_Dev_1111111111111111 AmazonEKSViewPolicy",
		"disassociate AWSReservedSSO_Dev_1111111111111111 AmazonEKSAdminPolicy")
	for i, want := range []string{"groups [developers] -> [developers,oncall]", "asks for AmazonEKSEditPolicy (namespaces team-a)",
		"scope of AmazonEKSViewPolicy cluster -> namespaces prod", "no longer asks for AmazonEKSAdminPolicy"} {
		if !strings.Contains(p.Ops[i].Reason, want) {
			t.Errorf("op %d reason %q, want %q", i, p.Ops[i].Reason, want)
		}
	}
}

// A re-provisioned permission set: the entry for the new role is created
// (with its policies) before the old one is deleted, and both say "moved".
func TestDiffMovedSuffixCreatesBeforeDeleting(t *testing.T) {
	newRole := strings.Replace(devRole, "1111111111111111", "2222222222222222", 1)
	d := devDesired()
	d.PrincipalARN = newRole
	old := devCurrent()
	old.Tags = map[string]string{ManagedTag: ManagedTagValue, PermissionSetTag: "Dev"}
	p := Diff([]Desired{d}, nil, []Current{old}, Options{})
	wantActions(t, p, "create AWSReservedSSO_Dev_2222222222222222", "associate AWSReservedSSO_Dev_2222222222222222 AmazonEKSViewPolicy",
		"delete AWSReservedSSO_Dev_1111111111111111")
	if p.Ops[0].Repair != RepairMoved || p.Ops[2].Repair != RepairMoved {
		t.Errorf("repairs %+v", p.Ops)
	}
	if !strings.Contains(p.Ops[0].Reason, "re-provisioned, its role is now AWSReservedSSO_Dev_2222222222222222 (was AWSReservedSSO_Dev_1111111111111111)") ||
		!strings.Contains(p.Ops[2].Reason, "permission set Dev was re-provisioned: replaced by the entry for its new role AWSReservedSSO_Dev_2222222222222222") {
		t.Errorf("reasons: %q / %q", p.Ops[0].Reason, p.Ops[2].Reason)
	}
	if got := p.Repairs(); got[RepairMoved] != 2 {
		t.Errorf("Repairs() = %v", got)
	}
}

func TestDiffRoleRecreatedAfterEntry(t *testing.T) {
	d := devDesired()
	cur := devCurrent()
	d.RoleCreated = cur.CreatedAt.Add(time.Hour)
	p := Diff([]Desired{d}, nil, []Current{cur}, Options{})
	wantActions(t, p, "recreate AWSReservedSSO_Dev_1111111111111111")
	if p.Ops[0].Repair != RepairRoleRecreated || !strings.Contains(p.Ops[0].Reason, "bound to the deleted role") {
		t.Errorf("op %+v", p.Ops[0])
	}
	// The role older than its entry: nothing to do.
	d.RoleCreated = cur.CreatedAt.Add(-time.Hour)
	wantActions(t, Diff([]Desired{d}, nil, []Current{cur}, Options{}))
}

func TestDiffTypeChangeRecreates(t *testing.T) {
	node := Desired{PrincipalARN: nodeRole, Type: TypeEC2Linux, Source: "mapRoles[1]", RoleCreated: t0}
	cur := Current{PrincipalARN: nodeRole, Type: TypeStandard, Tags: managed, CreatedAt: t0.Add(time.Second)}
	p := Diff([]Desired{node}, nil, []Current{cur}, Options{})
	wantActions(t, p, "recreate eks-node")
	if !strings.Contains(p.Ops[0].Reason, "cannot change in place") {
		t.Errorf("reason %q", p.Ops[0].Reason)
	}
}

func TestDiffNeverTouchesUnmanaged(t *testing.T) {
	unmanagedDev := devCurrent()
	unmanagedDev.Tags = map[string]string{"team": "platform"}
	unmanagedDev.Groups = []string{"other"}
	stranger := Current{PrincipalARN: ciRole, Type: TypeStandard, Tags: nil}
	p := Diff([]Desired{devDesired()}, nil, []Current{unmanagedDev, stranger}, Options{})
	wantActions(t, p)
	if len(p.Conflicts) != 1 || p.Conflicts[0].PrincipalARN != devRole || !strings.Contains(p.Conflicts[0].Reason, "--adopt") {
		t.Errorf("conflicts %+v", p.Conflicts)
	}
	if len(p.Unmanaged) != 1 || p.Unmanaged[0].PrincipalARN != ciRole {
		t.Errorf("unmanaged %+v", p.Unmanaged)
	}

	// --adopt: tag it, then bring it in line.
	p = Diff([]Desired{devDesired()}, nil, []Current{unmanagedDev, stranger}, Options{Adopt: true})
	wantActions(t, p, "adopt AWSReservedSSO_Dev_1111111111111111", "update AWSReservedSSO_Dev_1111111111111111")
	if len(p.Unmanaged) != 1 || len(p.Conflicts) != 0 {
		t.Errorf("plan %+v", p)
	}
}

func TestDiffDeletesOnlyManagedAndKeepsUntranslatable(t *testing.T) {
	gone := Current{PrincipalARN: ciRole, Type: TypeStandard, Tags: managed}
	kept := Current{PrincipalARN: aliceUser, Type: TypeStandard, Tags: managed}
	u := []Untranslatable{{Source: "mapUsers[0] (alice)", PrincipalARN: aliceUser, Reason: "x"}}
	p := Diff(nil, u, []Current{gone, kept}, Options{})
	wantActions(t, p, "delete deployer")
	if !strings.Contains(p.Ops[0].Reason, "no aws-auth entry maps this principal any more") || p.Ops[0].Repair != "" {
		t.Errorf("op %+v", p.Ops[0])
	}
	if len(p.Unmanaged) != 1 || p.Unmanaged[0].PrincipalARN != aliceUser || !strings.Contains(p.Unmanaged[0].Reason, "cannot be translated") {
		t.Errorf("unmanaged %+v", p.Unmanaged)
	}
}

// A role that IAM no longer has: aws-auth still maps it, so its managed
// entry is left alone and said so, not deleted as "no longer in aws-auth".
func TestDiffKeepsTheEntryOfAMissingRole(t *testing.T) {
	u := []Untranslatable{{Source: "mapRoles[2] (arn:aws:iam::111122223333:role/deployer)", PrincipalARN: "arn:aws:iam::111122223333:role/deployer", Reason: "does not exist in IAM"}}
	cur := Current{PrincipalARN: ciRole, Type: TypeStandard, Tags: managed}
	p := Diff(nil, u, []Current{cur}, Options{})
	wantActions(t, p)
	if len(p.Unmanaged) != 1 || p.Unmanaged[0].PrincipalARN != ciRole {
		t.Errorf("left %+v", p.Unmanaged)
	}
}
