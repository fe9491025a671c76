package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// The access-entries subcommands, run as a user would: the binary, AWS
// through the real SDK against the emulator.

const aeInput = `apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - permissionset: Admin
      username: admin:{{SessionName}}
      groups:
        - system:masters
    - permissionset: Dev+Ops
      username: devops:{{SessionName}}
      groups: [devops]
      accessPolicies:
        - policy: AmazonEKSEditPolicy
          namespaces: [team-a]
  mapUsers: |
    - userarn: arn:aws:iam::$ACCOUNTID:user/alice
      username: alice
      groups: [ops]
`

var aeWrites = []string{"eks:CreateAccessEntry", "eks:UpdateAccessEntry", "eks:DeleteAccessEntry",
	"eks:AssociateAccessPolicy", "eks:DisassociateAccessPolicy", "eks:TagResource"}

func startEKSEmulator(t *testing.T, mode string) *awsemu.Server {
	return startEmulator(t, awsemu.Config{NodeRoleName: "eks-node", Region: "eu-west-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1"),
			awsemu.SSORole("Dev+Ops", "1111111111111111", "eu-west-1"),
			{Name: "eks-node"},
		},
		Users:       []awsemu.User{{Name: "alice"}},
		EKSClusters: []awsemu.EKSCluster{{Name: "prod", AuthenticationMode: mode}},
	})
}

type planJSON struct {
	Cluster            string `json:"cluster"`
	AuthenticationMode string `json:"authenticationMode"`
	Operations         []struct {
		Action       string `json:"action"`
		PrincipalARN string `json:"principalArn"`
		Reason       string `json:"reason"`
		Policy       *struct {
			Policy     string   `json:"policy"`
			Namespaces []string `json:"namespaces"`
		} `json:"policy"`
		Desired *struct {
			Type   string   `json:"type"`
			Groups []string `json:"kubernetesGroups"`
		} `json:"desired"`
	} `json:"operations"`
	Untranslatable []struct {
		Source, Reason, Fix string
	} `json:"untranslatable"`
	Summary map[string]int `json:"summary"`
}

func TestAccessEntriesPlanApplyExitCodes(t *testing.T) {
	emu := startEKSEmulator(t, awsemu.AuthModeAPIAndConfigMap)
	const adminARN = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef"

	// Nothing exists yet: changes pending, exit 3.
	r := runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-", "--cluster", "prod", "-o", "json")
	if r.code != 3 {
		t.Fatalf("plan: exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, r.stdout)
	}
	if p.Cluster != "prod" || p.AuthenticationMode != "API_AND_CONFIG_MAP" || p.Summary["create"] != 4 || p.Summary["associate"] != 2 {
		t.Errorf("plan %+v", p)
	}
	first := p.Operations[0]
	if first.Action != "create" || first.PrincipalARN != adminARN || first.Desired.Type != "STANDARD" || !strings.Contains(first.Reason, "mapRoles[0] (permissionset Admin) has no access entry yet") {
		t.Errorf("first operation %+v", first)
	}
	if a := p.Operations[1]; a.Action != "associate" || a.Policy.Policy != "AmazonEKSClusterAdminPolicy" || a.Policy.Namespaces != nil {
		t.Errorf("system:masters becomes %+v", a)
	}
	if writes := sum(emu, aeWrites); writes != 0 {
		t.Errorf("plan wrote %d times", writes)
	}

	// Text: per principal, with the reasons.
	r = runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-", "--cluster", "prod")
	for _, want := range []string{"cluster prod, authentication mode API_AND_CONFIG_MAP", "Changes to make, in this order:",
		"create       " + adminARN + " type=STANDARD username=admin:{{SessionName}}: mapRoles[0] (permissionset Admin) has no access entry yet",
		"associate    arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Dev+Ops_1111111111111111 AmazonEKSEditPolicy (namespaces team-a)",
		"create       arn:aws:iam::111122223333:role/eks-node type=EC2_LINUX", "Plan: 2 associate, 4 create"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan text lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 3 || !strings.Contains(r.stderr, "error: 6 changes pending") {
		t.Errorf("exit %d, stderr %s", r.code, r.stderr)
	}

	// apply: does it, prints what it did.
	r = runCLI(t, emu, aeInput, "access-entries", "apply", "-f", "-", "--cluster", "prod")
	if r.code != 0 || !strings.Contains(r.stdout, "Done, in this order:") || !strings.Contains(r.stdout, "Applied: 2 associate, 4 create") {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	entries, _ := emu.AccessEntries("prod")
	if len(entries) != 4 {
		t.Fatalf("entries %+v", entries)
	}

	// A second apply makes no AWS write call; plan says nothing to do.
	emu.ResetCalls()
	r = runCLI(t, emu, aeInput, "access-entries", "apply", "-f", "-", "--cluster", "prod")
	if r.code != 0 || !strings.Contains(r.stdout, "no changes") || sum(emu, aeWrites) != 0 {
		t.Errorf("second apply: exit %d, writes %d\n%s", r.code, sum(emu, aeWrites), r.stdout)
	}
	r = runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-", "--cluster", "prod")
	if r.code != 0 {
		t.Errorf("plan after apply: exit %d\n%s", r.code, r.stdout)
	}
}

func TestAccessEntriesExitCodesForErrors(t *testing.T) {
	emu := startEKSEmulator(t, awsemu.AuthModeAPI)
	untranslatable := strings.Replace(aeInput, "groups: [devops]", "groups: [system:authenticated]", 1)
	r := runCLI(t, emu, untranslatable, "access-entries", "plan", "-f", "-", "--cluster", "prod")
	if r.code != 1 || !strings.Contains(r.stdout, "cannot be translated (not sent to EKS):") ||
		!strings.Contains(r.stdout, `mapRoles[1] (permissionset Dev+Ops): the group "system:authenticated" cannot be a Kubernetes group of an access entry`) ||
		!strings.Contains(r.stderr, "1 aws-auth entry cannot be translated") {
		t.Errorf("untranslatable: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// apply does the rest, and still exits 1.
	r = runCLI(t, emu, untranslatable, "access-entries", "apply", "-f", "-", "--cluster", "prod")
	if entries, _ := emu.AccessEntries("prod"); r.code != 1 || len(entries) != 3 {
		t.Errorf("apply with an untranslatable entry: exit %d, %d entries\n%s", r.code, len(entries), r.stdout)
	}

	broken := strings.Replace(aeInput, "      groups: [ops]", "     groups: [ops", 1)
	if r := runCLI(t, emu, broken, "access-entries", "plan", "-f", "-", "--cluster", "prod"); r.code != 1 || !strings.Contains(r.stderr, "MalformedYAML") && !strings.Contains(r.stderr, "not valid YAML") {
		t.Errorf("broken document: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-"); r.code != 2 || !strings.Contains(r.stderr, "--cluster is required") {
		t.Errorf("no --cluster: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-", "--cluster", "nope"); r.code != 2 || !strings.Contains(r.stderr, "No cluster found for name: nope.") {
		t.Errorf("unknown cluster: exit %d %s", r.code, r.stderr)
	}
	if err := emu.SetAuthenticationMode("prod", awsemu.AuthModeConfigMap); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, emu, aeInput, "access-entries", "plan", "-f", "-", "--cluster", "prod"); r.code != 2 || !strings.Contains(r.stderr, "authentication mode of cluster prod is CONFIG_MAP") {
		t.Errorf("CONFIG_MAP: exit %d %s", r.code, r.stderr)
	}
}

func sum(emu *awsemu.Server, actions []string) int {
	n := 0
	for _, a := range actions {
		n += emu.Calls(a)
	}
	return n
}
