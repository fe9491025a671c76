package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// These tests run the built binary, as a user would, with AWS served by the
// emulator through the SDK's standard endpoint variables.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aws-auth-webhook-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "aws-auth-webhook")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const account = "111122223333"

func startEmulator(t *testing.T, cfg awsemu.Config) *awsemu.Server {
	t.Helper()
	if cfg.AccountID == "" {
		cfg.AccountID = account
	}
	if cfg.Roles == nil {
		cfg.Roles = []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1"),
			awsemu.SSORole("Admin_ReadOnly", "fedcba9876543210", "eu-west-1"),
			awsemu.SSORole("Dev+Ops", "1111111111111111", "eu-west-1"),
		}
	}
	emu := awsemu.New(cfg)
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	return emu
}

type run struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, emu *awsemu.Server, stdin string, args ...string) run {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if emu != nil {
		for k, v := range emu.Env() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{code, out.String(), errb.String()}
}

const input = `apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    # platform admins
    - permissionset: Admin
      username: admin:{{SessionName}}
      groups:
        - system:masters
    - rolearn: arn:aws:iam::$ACCOUNTID:role/ci/deployer
      username: deployer
  mapUsers: |
    - userarn: arn:aws:iam::$ACCOUNTID:user/alice
      username: alice
`

const rendered = `apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    # platform admins
    - rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef
      permissionset: Admin
      username: admin:{{SessionName}}
      groups:
        - system:masters
    - rolearn: arn:aws:iam::111122223333:role/deployer
      username: deployer
    - rolearn: arn:aws:iam::111122223333:role/eks-node
      username: system:node:{{EC2PrivateDNSName}}
      groups:
        - system:bootstrappers
        - system:nodes
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/alice
      username: alice
`

func TestRenderAgainstEmulator(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{NodeRoleName: "eks-node"})
	r := runCLI(t, emu, input, "render", "-f", "-")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r.stdout != rendered {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, rendered)
	}
	if !strings.Contains(r.stderr, "warning: mapRoles[1]") || !strings.Contains(r.stderr, `IAM path "/ci/"`) {
		t.Errorf("no path warning on stderr: %s", r.stderr)
	}
	// One listing and one STS call resolve everything.
	if n := emu.Calls("iam:ListRoles"); n != 1 {
		t.Errorf("ListRoles calls = %d, want 1", n)
	}
	if n := emu.Calls("sts:GetCallerIdentity"); n != 1 {
		t.Errorf("GetCallerIdentity calls = %d, want 1", n)
	}

	// Idempotent: its own output renders to the same bytes.
	again := runCLI(t, emu, r.stdout, "render", "-f", "-")
	if again.code != 0 || again.stdout != r.stdout {
		t.Fatalf("second render differs (exit %d):\n%s", again.code, again.stdout)
	}
}

func TestRenderFromFileWithNodeRoleFlags(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{Partition: "aws-cn"})
	file := filepath.Join(t.TempDir(), "aws-auth.yaml")
	in := strings.ReplaceAll("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n    - permissionset: Dev+Ops\n      username: devops\n", "\t", "")
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, emu, "", "render", "-f", file,
		"--node-role-arn", "arn:aws-cn:iam::111122223333:role/nodes/group-a",
		"--node-role-arn", "arn:aws-cn:iam::111122223333:role/group-b")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"rolearn: arn:aws-cn:iam::111122223333:role/AWSReservedSSO_Dev+Ops_1111111111111111",
		"rolearn: arn:aws-cn:iam::111122223333:role/group-a\n",
		"rolearn: arn:aws-cn:iam::111122223333:role/group-b\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if emu.Calls("imds:iam/security-credentials/") != 0 {
		t.Error("asked IMDS although --node-role-arn was given")
	}
}

func TestRenderWithoutNodeRoleSaysSo(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{}) // no role attached to the "instance"
	r := runCLI(t, emu, input, "render", "-f", "-")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "no node entry is added") || !strings.Contains(r.stderr, "--node-role-arn") {
		t.Errorf("stderr does not explain the missing node role: %s", r.stderr)
	}
	if strings.Contains(r.stdout, "system:bootstrappers") {
		t.Errorf("a node entry was added without a node role:\n%s", r.stdout)
	}
}

func TestRenderRejects(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{NodeRoleName: "eks-node"})
	bad := strings.Replace(input, "permissionset: Admin", "permissionset: Admn", 1)
	r := runCLI(t, emu, bad, "render", "-f", "-")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", r.code, r.stdout)
	}
	for _, want := range []string{"mapRoles[0] (permissionset Admn)", `"Admn" has no role`, "Admin, Admin_ReadOnly, Dev+Ops"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestRenderAWSUnreachable(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{NodeRoleName: "eks-node"})
	emu.InjectFault("iam:ListRoles", awsemu.Fault{Code: "ServiceUnavailable", HTTPStatus: 503, Message: "down for the test"})
	r := runCLI(t, emu, input, "render", "-f", "-", "--node-role-arn", "arn:aws:iam::111122223333:role/eks-node")
	if r.code != 2 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "iam:ListRoles") || !strings.Contains(r.stderr, "Admin") {
		t.Errorf("stderr does not say which call failed: %s", r.stderr)
	}
}

func TestLint(t *testing.T) {
	emu := startEmulator(t, awsemu.Config{NodeRoleName: "eks-node"})
	ok := runCLI(t, emu, input, "lint", "-f", "-")
	if ok.code != 0 || strings.Contains(ok.stdout, "error:") || !strings.Contains(ok.stdout, "warning: mapRoles[1]") {
		t.Fatalf("valid input: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	bad := strings.Replace(input, "        - system:masters\n", "        - system:masters\n         - oops\n", 1)
	bad = strings.Replace(bad, "      username: deployer\n", "      username: deployer\n      rolarn: typo\n", 1)
	r := runCLI(t, emu, bad, "lint", "-f", "-", "-o", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	var findings []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &findings); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	var sawError, sawWarning bool
	for _, f := range findings {
		for _, k := range []string{"severity", "key", "index", "field", "message", "hint"} {
			if _, ok := f[k]; !ok {
				t.Errorf("finding lacks %q: %v", k, f)
			}
		}
		if f["severity"] == "error" && f["key"] == "mapRoles" && f["index"] == float64(0) && f["field"] == "groups" {
			sawError = true
		}
		if f["severity"] == "warning" && f["index"] == float64(1) && strings.Contains(f["hint"].(string), `"rolearn"`) {
			sawWarning = true
		}
	}
	if !sawError || !sawWarning {
		t.Errorf("want the groups error and the did-you-mean warning, got %s", r.stdout)
	}
	if calls := emu.AllCalls(); len(calls) != 0 {
		t.Errorf("lint called AWS: %v", calls)
	}
}

func TestLintInputErrors(t *testing.T) {
	missingBar := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n  mapRoles:\n    - rolearn: x\n"
	r := runCLI(t, nil, missingBar, "lint", "-f", "-")
	if r.code != 2 || !strings.Contains(r.stderr, "forget the '|'") {
		t.Errorf("missing bar: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "", "lint"); r.code != 2 || !strings.Contains(r.stderr, "-f is required") {
		t.Errorf("no -f: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, input, "lint", "-f", "-", "-o", "xml"); r.code != 2 {
		t.Errorf("-o xml: exit %d", r.code)
	}
}

// TestLintTextIsBounded: lint lists the first findings of each severity,
// each line bounded, then how many more there are; -o json lists them all.
func TestLintTextIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n")
	n := awsauth.MaxFindings - 100 // under the engine's own bound: every one is found
	b.WriteString(strings.Repeat("    -\n", n))
	r := runCLI(t, nil, b.String(), "lint", "-f", "-")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 1 || len(lines) != awsauth.MaxListedFindings+1 {
		t.Fatalf("exit %d, %d lines", r.code, len(lines))
	}
	for i, l := range lines[:awsauth.MaxListedFindings] {
		want := fmt.Sprintf("error: mapRoles[%d], line %d (line %d of mapRoles): entry %d is empty", i, i+8, i+1, i)
		if !strings.HasPrefix(l, want) || len(l) > len("error: ")+awsauth.MaxFindingBytes {
			t.Errorf("line %d: %q, want it to start %q", i, l, want)
		}
	}
	if want := fmt.Sprintf("error: ... and %d more error(s); `aws-auth-webhook lint -o json` lists them all", n-awsauth.MaxListedFindings); lines[awsauth.MaxListedFindings] != want {
		t.Errorf("last line %q, want %q", lines[awsauth.MaxListedFindings], want)
	}
	var all []awsauth.Finding
	r = runCLI(t, nil, b.String(), "lint", "-f", "-", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != n {
		t.Errorf("-o json: %v, %d findings", err, len(all))
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"render", "--help"}, {"lint", "--help"}} {
		r := runCLI(t, nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: exit %d\n%s", args, r.code, r.stdout)
		}
	}
}

// TestBadNodeRoleRefusedAtStart: a --node-role-arn the engine would refuse
// (an unknown partition passed the SDK's arn.Parse, and every write of
// aws-auth then failed) stops serve and render before anything else, with
// the flag, the reason and the fix.
func TestBadNodeRoleRefusedAtStart(t *testing.T) {
	for _, bad := range []string{"arn:aws-foo:iam::111122223333:role/eks-node", "arn:aws:iam::111122223333:user/eks-node", "eks-node"} {
		for _, args := range [][]string{
			{"serve", "--node-role-arn", bad, "--kubeconfig", "/nonexistent"},
			{"render", "-f", "-", "--node-role-arn", bad},
		} {
			r := runCLI(t, nil, input, args...)
			if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "--node-role-arn \""+bad+"\"") {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 naming the flag", args, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr, "Kubernetes configuration") || strings.Contains(r.stderr, "AWS") {
				t.Errorf("%v: got past the flag check: %s", args, r.stderr)
			}
		}
	}
	r := runCLI(t, nil, input, "serve", "--node-role-arn", "arn:aws-foo:iam::111122223333:role/eks-node")
	if !strings.Contains(r.stderr, `partition "aws-foo"`) || !strings.Contains(r.stderr, "aws, aws-cn or aws-us-gov") {
		t.Errorf("the message does not say what is wrong and how to fix it: %s", r.stderr)
	}
}

// TestLintDocumentLevel: what the authenticator (or kubectl, carrying the
// manifest) reads differently from how it looks is refused through lint,
// with the line of the file where the manifest's lines are the data's.
func TestLintDocumentLevel(t *testing.T) {
	head := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n"
	for _, tc := range []struct {
		name, manifest string
		code           int
		wants          []string
	}{
		{"a near-miss data key", head + "  map_roles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\n",
			1, []string{`"map_roles"`, "did you mean mapRoles?"}},
		{"a trailing space in a data key", head + "  \"mapRoles \": |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\n",
			1, []string{`"mapRoles "`, "did you mean mapRoles?"}},
		{"a line separator in a comment, as kubectl get -o yaml writes it", head + "  mapRoles: \"- rolearn: arn:aws:iam::111122223333:role/a\\n  username: a # x\\u2028  groups: [system:masters]\\n\"\n",
			1, []string{"U+2028 LINE SEPARATOR", "line 2 of mapRoles"}},
		{"a line separator in the manifest", head + "  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a # x\u2028      groups: [system:masters]\n",
			2, []string{"line 9", "U+2028 LINE SEPARATOR"}},
		{"a look-alike in a group, with the file's line", head + "  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\n      groups: [system:m\u0430sters]\n",
			1, []string{"U+0430 CYRILLIC SMALL LETTER A", "line 10 (line 3 of mapRoles)", "system:masters"}},
		{"two data: keys", head + "  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\ndata:\n  mapUsers: \"\"\n",
			2, []string{"data: is written twice (lines 6 and 10)", "kubectl keeps only the last"}},
		{"a data key twice", head + "  mapRoles: \"\"\n  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\n",
			2, []string{"data.mapRoles: is written twice"}},
		{"two documents", head + "  mapRoles: \"\"\n---\n" + head + "  mapUsers: \"\"\n", 2, []string{"more than one YAML document"}},
		{"a name that only looks like aws-auth", strings.Replace(head, "aws-auth", "aws-auth\u200b", 1) + "  mapRoles: \"\"\n",
			1, []string{"U+200B ZERO WIDTH SPACE", "set metadata.name to aws-auth"}},
		{"a misspelt data:", strings.Replace(head, "\ndata:", "\ndата:", 1) + "  mapRoles: \"\"\n", 2, []string{"did you mean data?"}},
		{"group: for groups", head + "  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/a\n      username: a\n      group: [system:masters]\n",
			1, []string{`"group"`, `did you mean "groups"?`, "line 10 (line 3 of mapRoles)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.manifest, "lint", "-f", "-")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output lacks %q:\n%s%s", w, r.stdout, r.stderr)
				}
			}
		})
	}
}
