package awsauth

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// want is one expected finding, written "error InvalidARN mapRoles[1]".
type want string

func describe(f Finding) string {
	where := f.Key
	if f.Index != nil {
		where += fmt.Sprintf("[%d]", *f.Index)
	}
	if where == "" {
		return fmt.Sprintf("%s %s", f.Severity, f.Reason)
	}
	return fmt.Sprintf("%s %s %s", f.Severity, f.Reason, where)
}

func assertFindings(t *testing.T, got Findings, wants []want) {
	t.Helper()
	var have []string
	for _, f := range got {
		have = append(have, describe(f))
	}
	missing := map[string]int{}
	for _, w := range wants {
		missing[string(w)]++
	}
	for _, h := range have {
		missing[h]--
	}
	for w, n := range missing {
		if n > 0 {
			t.Errorf("missing finding %q", w)
		}
		if n < 0 {
			t.Errorf("unexpected finding %q", w)
		}
	}
	if t.Failed() {
		t.Logf("all findings:\n  %s", strings.Join(got.Strings(), "\n  "))
	}
}

const nodeEntry = `- rolearn: arn:aws:iam::111122223333:role/eks-node
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
`

// TestLintRules checks every structural rule on its own, with no AWS.
func TestLintRules(t *testing.T) {
	cases := []struct {
		name string
		data map[string]string
		want []want
	}{
		{"valid document", map[string]string{
			"mapRoles":    nodeEntry + "- rolearn: arn:aws:iam::111122223333:role/admin\n  username: admin\n  groups: [system:masters]\n",
			"mapUsers":    "- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n  groups:\n    - system:masters\n",
			"mapAccounts": "- \"111122223333\"\n- 444455556666\n",
		}, nil},
		{"empty values are skipped like the authenticator does", map[string]string{
			"mapRoles": "", "mapUsers": `""`, "mapAccounts": "``",
		}, nil},
		{"malformed YAML", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n groups: [x]\n",
		}, []want{"error MalformedYAML mapRoles"}},
		{"not a list", map[string]string{
			"mapRoles": "rolearn: arn:aws:iam::111122223333:role/a\nusername: a\n",
		}, []want{"error NotAList mapRoles"}},
		{"a list item that is not a mapping", map[string]string{
			"mapRoles": "- arn:aws:iam::111122223333:role/a\n",
		}, []want{"error NotAMapping mapRoles[0]"}},
		{"an empty item", map[string]string{
			"mapRoles": "-\n- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n",
		}, []want{"error EmptyEntry mapRoles[0]"}},
		{"a second YAML document is ignored by the authenticator", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n---\n- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n",
		}, []want{"error MultipleDocuments mapRoles"}},
		{"role entry without rolearn or permissionset", map[string]string{
			"mapRoles": "- username: a\n  groups: [x]\n",
		}, []want{"error MissingARN mapRoles[0]"}},
		{"user entry without userarn", map[string]string{
			"mapUsers": "- username: a\n",
		}, []want{"error MissingARN mapUsers[0]"}},
		{"user ARN in mapRoles and role ARN in mapUsers", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:user/a\n  username: a\n",
			"mapUsers": "- userarn: arn:aws:iam::111122223333:role/a\n  username: a\n",
		}, []want{"error InvalidARN mapRoles[0]", "error InvalidARN mapUsers[0]"}},
		{"assumed-role ARN, bad account, unknown partition, not an ARN, region", map[string]string{
			"mapRoles": strings.Join([]string{
				"- rolearn: arn:aws:sts::111122223333:assumed-role/admin/alice\n  username: a",
				"- rolearn: arn:aws:iam::11112222333:role/b\n  username: b",
				"- rolearn: arn:aws-mars:iam::111122223333:role/c\n  username: c",
				"- rolearn: admin\n  username: d",
				"- rolearn: arn:aws:iam:us-east-1:111122223333:role/e\n  username: e",
			}, "\n") + "\n",
		}, []want{"error InvalidARN mapRoles[0]", "error InvalidARN mapRoles[1]", "error InvalidARN mapRoles[2]",
			"error InvalidARN mapRoles[3]", "error InvalidARN mapRoles[4]"}},
		{"other partitions are fine", map[string]string{
			"mapRoles": "- rolearn: arn:aws-cn:iam::111122223333:role/a\n  username: a\n- rolearn: arn:aws-us-gov:iam::111122223333:role/b\n  username: b\n",
		}, nil},
		{"duplicate role ARNs, compared case-insensitively and without path", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/Admin\n  username: a\n" +
				"- rolearn: arn:aws:iam::111122223333:role/team/admin\n  username: b\n",
		}, []want{"error DuplicateARN mapRoles[1]", "warning PathInARN mapRoles[1]"}},
		{"duplicate user ARNs", map[string]string{
			"mapUsers": "- userarn: arn:aws:iam::111122223333:user/alice\n  username: a\n" +
				"- userarn: arn:aws:iam::111122223333:user/ALICE\n  username: b\n",
		}, []want{"error DuplicateARN mapUsers[1]"}},
		{"duplicate permission sets", map[string]string{
			"mapRoles": "- permissionset: Admin\n  username: a\n- permissionset: Admin\n  username: b\n",
		}, []want{"error DuplicateARN mapRoles[1]"}},
		{"groups: indentation accident, empty group, not a list, not strings", map[string]string{
			"mapRoles": strings.Join([]string{
				"- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups:\n    - system:bootstrappers\n     - system:nodes",
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n  groups:\n    - \"\"",
				"- rolearn: arn:aws:iam::111122223333:role/c\n  username: c\n  groups: system:masters",
				"- rolearn: arn:aws:iam::111122223333:role/d\n  username: d\n  groups: [yes]",
			}, "\n") + "\n",
		}, []want{"error InvalidGroups mapRoles[0]", "error InvalidGroups mapRoles[1]", "error InvalidGroups mapRoles[2]", "error InvalidGroups mapRoles[3]"}},
		{"YAML 1.1 booleans and nulls where strings belong", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: on\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: 0x1F\n" +
				"- rolearn: ~\n  username: c\n",
			"mapUsers": "- userarn:\n  username: n\n",
		}, []want{"error WrongType mapRoles[0]", "error WrongType mapRoles[1]", "error MissingARN mapRoles[2]", "error MissingARN mapUsers[0]", "error WrongType mapUsers[0]"}},
		{"quoted YAML 1.1 words are strings", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: \"on\"\n  groups: [\"yes\"]\n",
		}, nil},
		{"odd key case works but warns; two spellings of one key are an error", map[string]string{
			"mapRoles": "- RoleArn: arn:aws:iam::111122223333:role/a\n  UserName: a\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  RoleARN: arn:aws:iam::111122223333:role/c\n  username: b\n",
		}, []want{"warning KeyCase mapRoles[0]", "warning KeyCase mapRoles[0]", "error DuplicateField mapRoles[1]"}},
		{"unknown keys warn, with did-you-mean", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  rolarn: x\n  team: platform\n",
		}, []want{"warning UnknownKey mapRoles[0]", "warning UnknownKey mapRoles[0]"}},
		{"unknown username template and missing username warn", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a:{{SessionNme}}\n- rolearn: arn:aws:iam::111122223333:role/b\n",
		}, []want{"warning UnknownTemplate mapRoles[0]", "warning MissingUsername mapRoles[1]"}},
		{"known templates are fine", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a:{{AccountID}}:{{SessionName}}:{{SessionNameRaw}}:{{AccessKeyID}}\n",
		}, nil},
		{"sso matcher", map[string]string{
			"mapRoles": "- sso:\n    permissionSetName: Admin\n    accountID: \"111122223333\"\n  username: a\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  sso:\n    permissionSetName: Admin\n  username: b\n",
		}, []want{"error UnsupportedSSOMatcher mapRoles[0]", "error UnsupportedSSOMatcher mapRoles[1]"}},
		{"permission set rules", map[string]string{
			"mapRoles": "- permissionset: \"has space\"\n  username: a\n",
			"mapUsers": "- userarn: arn:aws:iam::111122223333:user/a\n  permissionset: Admin\n  username: a\n",
		}, []want{"error InvalidPermissionSet mapRoles[0]", "error PermissionSetInMapUsers mapUsers[0]", "warning UnknownKey mapUsers[0]"}},
		{"$ACCOUNTID is a placeholder lint accepts", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::$ACCOUNTID:role/a\n  username: a\n",
			"mapUsers": "- userarn: arn:aws:iam::$ACCOUNTID:user/a\n  username: a\n",
		}, nil},
		{"mapAccounts must be 12-digit IDs", map[string]string{
			"mapAccounts": "- \"111122223333\"\n- 1234\n- abc\n",
		}, []want{"error InvalidAccountID mapAccounts[1]", "error InvalidAccountID mapAccounts[2]"}},
		{"mapAccounts not a list", map[string]string{
			"mapAccounts": "111122223333\n",
		}, []want{"error NotAList mapAccounts"}},
		{"data keys in the wrong case are ignored by the authenticator", map[string]string{
			"maproles": nodeEntry, "MapUsers": "[]",
		}, []want{"error IgnoredKey maproles", "error IgnoredKey MapUsers"}},
		// Data keys the authenticator does not read, though they look like
		// one it does.
		{"near-miss data keys", map[string]string{
			"map_roles": nodeEntry, "mapRole": nodeEntry, "maproles": nodeEntry, "mapRoles ": nodeEntry,
			"mapRoles\u200b": nodeEntry, "m\u0430pUsers": "[]", "mapAccount": "[]", "notes": "kept",
		}, []want{"error IgnoredKey map_roles", "error IgnoredKey mapRole", "error IgnoredKey maproles", "error IgnoredKey mapRoles ",
			"error IgnoredKey mapRoles\u200b", "error IgnoredKey m\u0430pUsers", "error IgnoredKey mapAccount"}},
		{"a data key that holds entries but is no near miss", map[string]string{
			"roles": nodeEntry, "users": "- userarn: arn:aws:iam::111122223333:user/a\n", "notes": "- just: a list\n", "mapRoles": nodeEntry,
		}, []want{"error IgnoredKey roles", "error IgnoredKey users"}},
		{"a data key that holds an invisible character", map[string]string{
			"\u00ad    username": "alice",
		}, []want{"error InvisibleCharacter \u00ad    username"}},
		// Line breaks to the authenticator's parser that nobody sees.
		{"a line separator in a comment", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/dev\n  username: dev\n  groups: [developers] # ok\u2028  - system:masters\n",
		}, []want{"error LineBreakCharacter mapRoles"}},
		{"a paragraph separator, a next line and a lone carriage return", map[string]string{
			"mapRoles":    "# a\u2029- rolearn: arn:aws:iam::111122223333:role/a\n",
			"mapUsers":    "# a\u0085- userarn: arn:aws:iam::111122223333:user/a\n",
			"mapAccounts": "# a\r- \"111122223333\"\n",
		}, []want{"error LineBreakCharacter mapRoles", "error LineBreakCharacter mapUsers", "error LineBreakCharacter mapAccounts"}},
		{"characters the parser refuses", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\x00\n",
			"mapUsers": "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\x7f\n",
		}, []want{"error ForbiddenCharacter mapRoles", "error ForbiddenCharacter mapUsers"}},
		{"a bidirectional control in a comment", map[string]string{
			"mapRoles": nodeEntry + "# owner: \u202eplatform\n",
		}, []want{"error BidiControl mapRoles"}},
		// Invisible and look-alike characters in what is compared byte
		// for byte.
		{"invisible characters in ARNs, usernames and groups", map[string]string{
			"mapRoles": strings.Join([]string{
				"- rolearn: arn:aws:iam::111122223333:role/ad\u200bmin\n  username: a",
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: \"de\u00adv\"",
				"- rolearn: arn:aws:iam::111122223333:role/c\n  username: c\n  groups: [\"system:masters\u2060\"]",
				"- rolearn: arn:aws:iam::111122223333:role/d\n  username: d\ufeffx",
				"- rolearn: arn:aws:iam::111122223333:role/e\n  username: \"e\\u202ex\"",
				"- rolearn: arn:aws:iam::111122223333:role/f\n  username: \"f\\0\"",
				"- rolearn: arn:aws:iam::111122223333:role/g\n  username: \"g\u00a0h\"",
			}, "\n") + "\n",
		}, []want{"error InvisibleCharacter mapRoles[0]", "error InvisibleCharacter mapRoles[1]", "error InvisibleCharacter mapRoles[2]",
			"error InvisibleCharacter mapRoles[3]", "error InvisibleCharacter mapRoles[4]", "error InvisibleCharacter mapRoles[5]",
			"error InvisibleCharacter mapRoles[6]"}},
		{"look-alike characters", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups: [system:m\u0430sters]\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: \uff42\n" +
				"- rolearn: arn:aws:iam::111122223333:role/c\n  username: \"c\u0301\"\n" +
				"- rolearn: arn:aws:iam::111122223333:role/\u0430dmin\n  username: d\n",
			"mapUsers": "- userarn: arn:aws:iam::111122223333:user/\u0435ve\n  username: eve\n",
		}, []want{"error ConfusableCharacter mapRoles[0]", "error ConfusableCharacter mapRoles[1]", "error ConfusableCharacter mapRoles[2]",
			"error ConfusableCharacter mapRoles[3]", "error ConfusableCharacter mapUsers[0]"}},
		{"a name wholly in another script is fine", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: \u0440\u0430\u0437\u0440\u0430\u0431\u043e\u0442\u0447\u0438\u043a\n  groups: [\u00e9quipe, \u65e5\u672c]\n",
		}, nil},
		{"misspelt fields: group, usrname, role_arn", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  group: [system:masters]\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  usrname: b\n" +
				"- role_arn: arn:aws:iam::111122223333:role/c\n  username: c\n",
		}, []want{"error MisspeltKey mapRoles[0]", "error MisspeltKey mapRoles[1]", "error MisspeltKey mapRoles[2]", "error MissingARN mapRoles[2]"}},
		{"a bare groups: loads no groups", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups:\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n  groups: ~\n" +
				"- rolearn: arn:aws:iam::111122223333:role/c\n  username: c\n  groups: []\n",
		}, []want{"error InvalidGroups mapRoles[0]", "error InvalidGroups mapRoles[1]"}},
		{"userid is a field the authenticator reads, reported once", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  userid: 5\n" +
				"- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n  userid: AROAEXAMPLE\n",
		}, []want{"error WrongType mapRoles[0]"}},
		{"permission sets that differ in case are two permission sets", map[string]string{
			"mapRoles": "- permissionset: Admin\n  username: a\n- permissionset: admin\n  username: b\n",
		}, []want{"warning PermissionSetCase mapRoles[1]"}},
		{"a rolearn that is another permission set's role", map[string]string{
			"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_ReadOnly_0123456789abcdef\n  permissionset: Admin\n  username: a\n" +
				"- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Dev_0123456789abcdef\n  username: b\n",
		}, []want{"warning RoleOfOtherPermissionSet mapRoles[0]", "warning SSORoleWithoutPermissionSet mapRoles[1]"}},
		{"too large", map[string]string{
			"mapRoles": nodeEntry, "padding": strings.Repeat("x", MaxConfigMapBytes),
		}, []want{"error TooLarge"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertFindings(t, Lint(tc.data).Findings, tc.want)
		})
	}
}

// TestFindingsNameEntryAndFix checks that messages say where and how to fix.
func TestFindingsNameEntryAndFix(t *testing.T) {
	res := Lint(map[string]string{"mapRoles": nodeEntry +
		"- permissionset: Admin\n  username: a\n" +
		"- permissionset: Admin\n  username: b\n"})
	errs := res.Findings.Errors()
	if len(errs) != 1 {
		t.Fatalf("want 1 error, got %v", res.Findings.Strings())
	}
	got := errs[0].String()
	for _, part := range []string{"mapRoles[2]", "permissionset Admin", "mapRoles[1]", "line 8", "Fix: merge"} {
		if !strings.Contains(got, part) {
			t.Errorf("message %q lacks %q", got, part)
		}
	}
}

func TestMalformedYAMLGivesLine(t *testing.T) {
	res := Lint(map[string]string{"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups:\n  - x\n   bad: [\n"})
	errs := res.Findings.Errors()
	if len(errs) != 1 || errs[0].Line == 0 || errs[0].Key != "mapRoles" {
		t.Fatalf("want one MalformedYAML error with a line, got %+v", errs)
	}
}

// TestRenderRejectsUnreadableWithoutAWS: a broken document is reported,
// never edited, and makes no AWS call.
func TestRenderRejectsUnreadableWithoutAWS(t *testing.T) {
	r := newFakeResolver()
	data := map[string]string{"mapRoles": "- permissionset: Admin\n username: x\n"}
	res, err := Render(context.Background(), data, r, Options{NodeRoleARNs: []string{"arn:aws:iam::111122223333:role/n"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Findings.HasErrors() || len(res.Changed) != 0 || res.Data["mapRoles"] != data["mapRoles"] {
		t.Fatalf("want a rejection with nothing changed, got %v changed=%v", res.Findings.Strings(), res.Changed)
	}
	if r.lookups+r.accounts != 0 {
		t.Fatalf("made %d AWS calls for a broken document", r.lookups+r.accounts)
	}
}
