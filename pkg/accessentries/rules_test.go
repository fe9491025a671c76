package accessentries

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

const (
	acct       = "111122223333"
	adminRole  = "arn:aws:iam::" + acct + ":role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef"
	devRole    = "arn:aws:iam::" + acct + ":role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Dev_1111111111111111"
	ciRole     = "arn:aws:iam::" + acct + ":role/ci/deployer"
	nodeRole   = "arn:aws:iam::" + acct + ":role/eks-node"
	aliceUser  = "arn:aws:iam::" + acct + ":user/people/alice"
	roleCreate = "2024-01-02T03:04:05Z"
)

// resolver answers the engine's questions for the permission sets above.
type resolver struct{}

func (resolver) Account(context.Context) (awsauth.Account, error) {
	return awsauth.Account{Partition: "aws", ID: acct}, nil
}

func (resolver) PermissionSetRoles(_ context.Context, names []string) (awsauth.PermissionSetLookup, error) {
	all := map[string]string{
		"Admin": "arn:aws:iam::" + acct + ":role/AWSReservedSSO_Admin_0123456789abcdef",
		"Dev":   "arn:aws:iam::" + acct + ":role/AWSReservedSSO_Dev_1111111111111111",
	}
	out := awsauth.PermissionSetLookup{ARNs: map[string]string{}, Existing: []string{"Admin", "Dev"}}
	for _, n := range names {
		if a, ok := all[n]; ok {
			out.ARNs[n] = a
		}
	}
	return out, nil
}

func facts() RoleFacts {
	created, _ := time.Parse(time.RFC3339, roleCreate)
	f := RoleFacts{}
	for _, a := range []string{adminRole, devRole, ciRole, nodeRole} {
		k, _ := awsauth.IdentityKey(a)
		f[k] = RoleFact{ARN: a, Created: created}
	}
	return f
}

func render(t *testing.T, mapRoles, mapUsers string) *awsauth.Result {
	t.Helper()
	data := map[string]string{awsauth.KeyMapRoles: mapRoles}
	if mapUsers != "" {
		data[awsauth.KeyMapUsers] = mapUsers
	}
	res, err := awsauth.Render(context.Background(), data, resolver{}, awsauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Findings.HasErrors() {
		t.Fatalf("rendering the test document: %v", res.Findings.Errors().Strings())
	}
	return res
}

// TestMappingRules has a case per mapping rule (the README table lists
// them in the same order).
func TestMappingRules(t *testing.T) {
	created, _ := time.Parse(time.RFC3339, roleCreate)
	for _, tc := range []struct {
		name, mapRoles, mapUsers string
		want                     *Desired
		reason, fix              string
	}{{
		name:     "permissionset becomes a STANDARD entry for the role's real ARN with its SSO path",
		mapRoles: "- permissionset: Dev\n  username: dev:{{SessionName}}\n  groups: [developers, viewers]\n",
		want: &Desired{PrincipalARN: devRole, Type: TypeStandard, Username: "dev:{{SessionName}}", Groups: []string{"developers", "viewers"},
			Source: "mapRoles[0] (permissionset Dev)", PermissionSet: "Dev", RoleCreated: created},
	}, {
		name:     "rolearn without its path becomes the role's ARN with the path IAM knows",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/deployer\n  username: deployer\n  groups: [deployers]\n",
		want: &Desired{PrincipalARN: ciRole, Type: TypeStandard, Username: "deployer", Groups: []string{"deployers"},
			Source: "mapRoles[0] (arn:aws:iam::111122223333:role/deployer)", RoleCreated: created},
	}, {
		name:     "userarn is kept as written",
		mapUsers: "- userarn: " + aliceUser + "\n  username: alice\n  groups: [ops]\n",
		want:     &Desired{PrincipalARN: aliceUser, Type: TypeStandard, Username: "alice", Groups: []string{"ops"}, Source: "mapUsers[0] (" + aliceUser + ")"},
	}, {
		name:     "system:masters becomes AmazonEKSClusterAdminPolicy at cluster scope",
		mapRoles: "- permissionset: Admin\n  username: admin:{{SessionName}}\n  groups: [system:masters, platform]\n",
		want: &Desired{PrincipalARN: adminRole, Type: TypeStandard, Username: "admin:{{SessionName}}", Groups: []string{"platform"},
			Policies: []Association{{Policy: "AmazonEKSClusterAdminPolicy"}}, Source: "mapRoles[0] (permissionset Admin)", PermissionSet: "Admin", RoleCreated: created},
	}, {
		name:     "accessPolicies become associations, scoped",
		mapRoles: "- permissionset: Dev\n  username: dev:{{SessionName}}\n  accessPolicies:\n    - policy: AmazonEKSViewPolicy\n    - policy: AmazonEKSEditPolicy\n      namespaces: [team-b, team-a]\n",
		want: &Desired{PrincipalARN: devRole, Type: TypeStandard, Username: "dev:{{SessionName}}",
			Policies: []Association{{Policy: "AmazonEKSEditPolicy", Namespaces: []string{"team-a", "team-b"}}, {Policy: "AmazonEKSViewPolicy"}},
			Source:   "mapRoles[0] (permissionset Dev)", PermissionSet: "Dev", RoleCreated: created},
	}, {
		name:     "the node-role entry becomes EC2_LINUX with no groups and no username",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n",
		want:     &Desired{PrincipalARN: nodeRole, Type: TypeEC2Linux, Source: "mapRoles[0] (arn:aws:iam::111122223333:role/eks-node)", RoleCreated: created},
	}, {
		name:     "the Windows node shape becomes EC2_WINDOWS",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes, eks:kube-proxy-windows]\n",
		want:     &Desired{PrincipalARN: nodeRole, Type: TypeEC2Windows, Source: "mapRoles[0] (arn:aws:iam::111122223333:role/eks-node)", RoleCreated: created},
	}, {
		name:     "the Fargate pod execution role shape becomes FARGATE_LINUX",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{SessionName}}\n  groups: [system:bootstrappers, system:nodes, system:node-proxier]\n",
		want:     &Desired{PrincipalARN: nodeRole, Type: TypeFargateLinux, Source: "mapRoles[0] (arn:aws:iam::111122223333:role/eks-node)", RoleCreated: created},
	}, {
		name:     "no username: EKS generates one",
		mapRoles: "- permissionset: Dev\n  groups: [developers]\n",
		want:     &Desired{PrincipalARN: devRole, Type: TypeStandard, Groups: []string{"developers"}, Source: "mapRoles[0] (permissionset Dev)", PermissionSet: "Dev", RoleCreated: created},
	}, {
		name:     "{{AccountID}} is written out",
		mapRoles: "- permissionset: Dev\n  username: dev-{{AccountID}}:{{SessionNameRaw}}\n",
		want:     &Desired{PrincipalARN: devRole, Type: TypeStandard, Username: "dev-111122223333:{{SessionNameRaw}}", Source: "mapRoles[0] (permissionset Dev)", PermissionSet: "Dev", RoleCreated: created},
	}, {
		name:     "another system: group is not translatable",
		mapRoles: "- permissionset: Dev\n  username: dev:{{SessionName}}\n  groups: [system:authenticated]\n",
		reason:   `the group "system:authenticated" cannot be a Kubernetes group of an access entry: EKS refuses group names that start with system:`,
		fix:      "without the system: prefix",
	}, {
		name:     "a half node shape is not translatable",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n",
		reason:   `the group "system:nodes" cannot be a Kubernetes group`,
		fix:      "a node entry has exactly the groups",
	}, {
		name:     "a reserved username prefix is not translatable",
		mapRoles: "- permissionset: Dev\n  username: eks:dev\n",
		reason:   `the username "eks:dev" starts with eks:, which EKS refuses`,
		fix:      "without that prefix",
	}, {
		name:     "{{EC2PrivateDNSName}} outside a node entry is not translatable",
		mapRoles: "- permissionset: Dev\n  username: node-{{EC2PrivateDNSName}}\n",
		reason:   "access entries render only in node entries",
		fix:      "give the entry the node groups",
	}, {
		name:     "{{AccessKeyID}} is not translatable",
		mapRoles: "- permissionset: Dev\n  username: dev:{{AccessKeyID}}\n",
		reason:   "{{AccessKeyID}}, which access entries do not render",
		fix:      "{{SessionName}}",
	}, {
		name:     "{{SessionName}} without a colon before it is not translatable",
		mapRoles: "- permissionset: Dev\n  username: dev-{{SessionName}}\n",
		reason:   "has no colon before {{SessionName}}, which EKS requires",
		fix:      "dev:{{SessionName}}",
	}, {
		name:     "a node entry with another username is not translatable",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: node\n  groups: [system:bootstrappers, system:nodes]\n",
		reason:   `EC2_LINUX access entry always has the username system:node:{{EC2PrivateDNSName}}`,
		fix:      "write username: system:node:{{EC2PrivateDNSName}}",
	}, {
		name:     "a user with the node groups is not translatable",
		mapUsers: "- userarn: " + aliceUser + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n",
		reason:   "a node entry must map an IAM role",
		fix:      "mapRoles",
	}, {
		name:     "a role IAM does not have is not translatable",
		mapRoles: "- rolearn: arn:aws:iam::111122223333:role/gone\n  username: gone\n",
		reason:   "does not exist in IAM, so EKS would refuse it as an invalid principal",
		fix:      "create the role",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			mapRoles := tc.mapRoles
			if mapRoles == "" {
				mapRoles = "[]"
			}
			desired, untranslatable := Translate(render(t, mapRoles, tc.mapUsers), facts())
			if tc.want != nil {
				if len(untranslatable) > 0 || len(desired) != 1 {
					t.Fatalf("want one desired entry, got %+v and untranslatable %+v", desired, untranslatable)
				}
				if !reflect.DeepEqual(desired[0], *tc.want) {
					t.Errorf("got  %+v\nwant %+v", desired[0], *tc.want)
				}
				return
			}
			if len(desired) != 0 || len(untranslatable) != 1 {
				t.Fatalf("want one untranslatable entry, got desired %+v, untranslatable %+v", desired, untranslatable)
			}
			u := untranslatable[0]
			if !strings.Contains(u.Reason, tc.reason) || !strings.Contains(u.Fix, tc.fix) || !strings.HasPrefix(u.Source, "map") {
				t.Errorf("got %+v\nwant reason with %q, fix with %q", u, tc.reason, tc.fix)
			}
		})
	}
}

func TestMapAccountsIsReported(t *testing.T) {
	res, err := awsauth.Render(context.Background(), map[string]string{awsauth.KeyMapAccounts: "- \"444455556666\"\n"}, resolver{}, awsauth.Options{})
	if err != nil || res.Findings.HasErrors() {
		t.Fatal(err, res.Findings.Strings())
	}
	desired, untranslatable := Translate(res, facts())
	if len(desired) != 0 || len(untranslatable) != 1 || untranslatable[0].Source != "mapAccounts[0] (444455556666)" ||
		!strings.Contains(untranslatable[0].Reason, "no equivalent") {
		t.Fatalf("got %+v %+v", desired, untranslatable)
	}
}

func TestRolesNeeded(t *testing.T) {
	got := RolesNeeded(render(t, "- permissionset: Dev\n- rolearn: arn:aws:iam::111122223333:role/Deployer\n", ""))
	want := []string{"arn:aws:iam::111122223333:role/awsreservedsso_dev_1111111111111111", "arn:aws:iam::111122223333:role/deployer"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RolesNeeded = %q, want %q", got, want)
	}
}
