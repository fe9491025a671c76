package awsauth

import (
	"reflect"
	"strings"
	"testing"
)

func TestAccessPoliciesParsed(t *testing.T) {
	res := Lint(map[string]string{KeyMapRoles: `- permissionset: Dev
  username: dev:{{SessionName}}
  accessPolicies:
    - policy: AmazonEKSViewPolicy
    - policy: arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy
      namespaces: [team-b, team-a, "dev-*"]
`, KeyMapUsers: `- userarn: arn:aws:iam::111122223333:user/alice
  username: alice
  AccessPolicies: [{policy: AmazonEKSAdminViewPolicy}]
`})
	if res.Findings.HasErrors() {
		t.Fatalf("unexpected errors: %v", res.Findings.Strings())
	}
	for _, f := range res.Findings {
		if f.Reason == "UnknownKey" {
			t.Errorf("accessPolicies must not be an unknown key: %s", f)
		}
		if f.Reason == "KeyCase" && f.Index != nil && *f.Index == 0 && f.Key == KeyMapRoles {
			t.Errorf("accessPolicies is the usual spelling: %s", f)
		}
	}
	want := []AccessPolicy{
		{Policy: "AmazonEKSViewPolicy", Line: 4},
		{Policy: "AmazonEKSEditPolicy", Namespaces: []string{"dev-*", "team-a", "team-b"}, Line: 5},
	}
	if got := res.Roles[0].AccessPolicies; !reflect.DeepEqual(got, want) {
		t.Errorf("roles[0].AccessPolicies = %+v, want %+v", got, want)
	}
	if got := res.Users[0].AccessPolicies; len(got) != 1 || got[0].Policy != "AmazonEKSAdminViewPolicy" || got[0].Namespaces != nil {
		t.Errorf("users[0].AccessPolicies = %+v", got)
	}
}

func TestAccessPoliciesLint(t *testing.T) {
	for _, tc := range []struct {
		name, policies string
		line           int
		msg, hint      string
	}{
		{"unknown policy", "\n    - policy: AmazonEKSViewerPolicy", 4, `"AmazonEKSViewerPolicy" is not an EKS access policy.`, "did you mean AmazonEKSViewPolicy?"},
		{"service-linked only", "\n    - policy: AmazonEKSComputePolicy", 4, "designated for AWS service-linked roles only", "choose one of"},
		{"empty namespaces", "\n    - policy: AmazonEKSEditPolicy\n      namespaces: []", 4, "namespace list of AmazonEKSEditPolicy is empty", "remove 'namespaces:' to grant the policy across the cluster"},
		{"bad namespace", "\n    - policy: AmazonEKSEditPolicy\n      namespaces: [Team_A]", 4, `"Team_A" is not a Kubernetes namespace name.`, "lowercase letters"},
		{"boolean namespace", "\n    - policy: AmazonEKSEditPolicy\n      namespaces: [on]", 4, "read as the boolean true", "quotes"},
		{"not a list", " AmazonEKSViewPolicy", 3, "not as a list", "'- policy: NAME'"},
		{"item not a mapping", "\n    - AmazonEKSViewPolicy", 4, "not as a mapping", "policy: NAME"},
		{"no policy", "\n    - namespaces: [a]", 4, "has no policy", "add 'policy: NAME'"},
		{"unknown key", "\n    - policy: AmazonEKSViewPolicy\n      namespace: [a]", 4, `unknown key "namespace"`, `did you mean "namespaces"?`},
		{"twice", "\n    - policy: AmazonEKSViewPolicy\n    - policy: AmazonEKSViewPolicy\n      namespaces: [a]", 5, "listed twice", "merge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "- permissionset: Dev\n  username: dev:{{SessionName}}\n  accessPolicies:" + tc.policies + "\n"
			res := Lint(map[string]string{KeyMapRoles: doc})
			errs := res.Findings.Errors()
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v\n%s", errs.Strings(), doc)
			}
			f := errs[0]
			if f.Reason != "InvalidAccessPolicies" || f.Line != tc.line || f.Field != "accessPolicies" || f.Entry != "permissionset Dev" {
				t.Errorf("finding %+v: want reason InvalidAccessPolicies, line %d, field accessPolicies, entry permissionset Dev", f, tc.line)
			}
			if !strings.Contains(f.Message, tc.msg) || !strings.Contains(f.Hint, tc.hint) {
				t.Errorf("finding %q\nwant message with %q and hint with %q", f.String(), tc.msg, tc.hint)
			}
		})
	}
}

// TestAuthenticatorIgnoresAccessPolicies proves with the authenticator's own
// parser that an entry loads the same with and without accessPolicies,
// whatever its value: valid, invalid, or of any YAML type.
func TestAuthenticatorIgnoresAccessPolicies(t *testing.T) {
	base := "- rolearn: arn:aws:iam::111122223333:role/dev\n  username: dev:{{SessionName}}\n  groups: [developers]\n"
	for i, value := range append([]string{
		" AmazonEKSViewPolicy",
		" ~",
		" yes",
		" {policy: AmazonEKSViewPolicy}",
		"\n    - policy: AmazonEKSEditPolicy\n      namespaces: [team-a, 'dev-*']\n    - policy: AmazonEKSClusterAdminPolicy",
		"\n  - policy: {nested: [1, 2, {x: y}]}\n    namespaces: on",
	}, func() []string {
		var out []string
		for _, it := range accessPolicyItems {
			out = append(out, " ["+it+"]")
		}
		return out
	}()...) {
		for _, key := range []string{"accessPolicies", "AccessPolicies", "accesspolicies"} {
			with := map[string]string{KeyMapRoles: base + "  " + key + ":" + value + "\n",
				KeyMapUsers: "- userarn: arn:aws:iam::111122223333:user/alice\n  " + key + ":" + value + "\n  username: alice\n"}
			without := map[string]string{KeyMapRoles: base, KeyMapUsers: "- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n"}
			a, b := parseMap(with), parseMap(without)
			if a.err != nil || b.err != nil {
				t.Fatalf("case %d (%s): the authenticator reports %v / %v\n%s", i, key, a.err, b.err, showDoc(with))
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("case %d (%s): the authenticator loads %+v with accessPolicies and %+v without\n%s", i, key, a, b, showDoc(with))
			}
		}
	}
}
