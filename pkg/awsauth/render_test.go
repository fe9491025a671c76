package awsauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// goldenCase is one file under testdata/render: a description, then
// sections "-- options --", "-- in KEY --", "-- out KEY --", "-- findings --".
// Each finding is written in full, "severity Reason: what lint prints", so
// that every message the engine can give is in front of a reviewer; run
// the test with UPDATE_GOLDEN=1 to rewrite the findings sections.
type goldenCase struct {
	nodeRoles []string
	in, out   map[string]string
	findings  []string
}

// goldenFinding is how a finding is written in a golden file.
func goldenFinding(f Finding) string {
	return fmt.Sprintf("%s %s: %s", f.Severity, f.Reason, f)
}

func readGolden(t testing.TB, path string) goldenCase {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gc := goldenCase{in: map[string]string{}, out: map[string]string{}}
	var name string
	var body strings.Builder
	flush := func() {
		text := body.String()
		switch {
		case name == "options":
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				if v, ok := strings.CutPrefix(line, "node-role-arn: "); ok {
					gc.nodeRoles = append(gc.nodeRoles, v)
				}
			}
		case name == "findings":
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				if line != "" {
					gc.findings = append(gc.findings, line)
				}
			}
		case strings.HasPrefix(name, "in "):
			gc.in[strings.TrimPrefix(name, "in ")] = text
		case strings.HasPrefix(name, "out "):
			gc.out[strings.TrimPrefix(name, "out ")] = text
		}
		body.Reset()
	}
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(strings.TrimSpace(line), " --") {
			flush()
			name = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "-- "), " --")
			continue
		}
		body.WriteString(line)
	}
	flush()
	return gc
}

// TestRenderGolden renders each golden input and compares the output byte
// for byte, then renders the output again: render is idempotent.
func TestRenderGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/render/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			gc := readGolden(t, file)
			opts := Options{NodeRoleARNs: gc.nodeRoles}
			res, err := Render(context.Background(), gc.in, newFakeResolver(), opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, goldenFinding(f))
			}
			if os.Getenv("UPDATE_GOLDEN") != "" {
				updateGolden(t, file, res)
				return
			} else if strings.Join(got, "\n") != strings.Join(gc.findings, "\n") {
				t.Errorf("findings:\n--- got ---\n%s\n--- want ---\n%s", strings.Join(got, "\n"), strings.Join(gc.findings, "\n"))
			}
			keys := map[string]bool{}
			for k := range gc.out {
				keys[k] = true
			}
			for k := range res.Data {
				keys[k] = true
			}
			for k := range keys {
				if res.Data[k] != gc.out[k] {
					t.Errorf("%s:\n--- got ---\n%s--- want ---\n%s", k, res.Data[k], gc.out[k])
				}
			}
			if res.Findings.HasErrors() {
				return
			}
			again, err := Render(context.Background(), res.Data, newFakeResolver(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Changed) != 0 {
				t.Errorf("render is not idempotent: second pass changed %v", again.Changed)
			}
		})
	}
}

// updateGolden rewrites the out and findings sections of a golden file
// from what Render gave (the description, options and in sections stay).
func updateGolden(t *testing.T, file string, res *Result) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, cut := range []string{"\n-- out ", "\n-- findings --"} {
		if i := strings.Index(text, cut); i >= 0 {
			text = text[:i+1]
		}
	}
	keys := make([]string, 0, len(res.Data))
	for k := range res.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		text += "-- out " + k + " --\n" + res.Data[k]
		if !strings.HasSuffix(res.Data[k], "\n") && res.Data[k] != "" {
			t.Fatalf("%s: %s does not end in a line break; a golden file cannot hold it", file, k)
		}
	}
	text += "-- findings --\n"
	for _, f := range res.Findings {
		text += goldenFinding(f) + "\n"
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderKeepsCRLF(t *testing.T) {
	in := "- permissionset: Admin\r\n  username: admin\r\n"
	res, err := Render(context.Background(), map[string]string{"mapRoles": in}, newFakeResolver(),
		Options{NodeRoleARNs: []string{"arn:aws:iam::111122223333:role/eks-node"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef\r\n  permissionset: Admin\r\n  username: admin\r\n" +
		"- rolearn: arn:aws:iam::111122223333:role/eks-node\r\n  username: system:node:{{EC2PrivateDNSName}}\r\n  groups:\r\n    - system:bootstrappers\r\n    - system:nodes\r\n"
	if got := res.Data["mapRoles"]; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestRenderLeavesOtherKeysAlone(t *testing.T) {
	data := map[string]string{"mapRoles": "- permissionset: Admin\n  username: a\n", "notes": "keep: me\n"}
	res, err := Render(context.Background(), data, newFakeResolver(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Data["notes"] != "keep: me\n" || !equalStrings(res.Changed, []string{"mapRoles"}) {
		t.Fatalf("changed %v, notes %q", res.Changed, res.Data["notes"])
	}
	if data["mapRoles"] != "- permissionset: Admin\n  username: a\n" {
		t.Fatal("Render modified its input map")
	}
}

// TestRenderAsksAWSOnlyWhenNeeded: no permission set and no $ACCOUNTID
// means no AWS call at all; otherwise one call per question.
func TestRenderAsksAWSOnlyWhenNeeded(t *testing.T) {
	r := newFakeResolver()
	_, err := Render(context.Background(), map[string]string{"mapRoles": nodeEntry}, r,
		Options{NodeRoleARNs: []string{"arn:aws:iam::111122223333:role/eks-node"}})
	if err != nil || r.accounts+r.lookups != 0 {
		t.Fatalf("err=%v accounts=%d lookups=%d, want no calls", err, r.accounts, r.lookups)
	}
	_, err = Render(context.Background(), map[string]string{
		"mapRoles": "- permissionset: Admin\n  username: a\n- permissionset: Dev+Ops\n  username: b\n- rolearn: arn:aws:iam::$ACCOUNTID:role/x\n  username: x\n",
		"mapUsers": "- userarn: arn:aws:iam::$ACCOUNTID:user/y\n  username: y\n",
	}, r, Options{})
	if err != nil || r.accounts != 1 || r.lookups != 1 {
		t.Fatalf("err=%v accounts=%d lookups=%d, want one of each", err, r.accounts, r.lookups)
	}
	if _, err := Render(context.Background(), map[string]string{"mapRoles": "- permissionset: Admin\n"}, nil, Options{}); err == nil {
		t.Fatal("a document that needs AWS rendered without a resolver")
	}
}

func TestRenderAWSFailures(t *testing.T) {
	data := map[string]string{"mapRoles": "- permissionset: Admin\n  username: a\n"}

	r := newFakeResolver()
	r.iamErr = errIAMDown
	_, err := Render(context.Background(), data, r, Options{})
	var le *LookupError
	if !errors.As(err, &le) || le.Call != "iam:ListRoles" || !equalStrings(le.Names, []string{"Admin"}) || !errors.Is(err, errIAMDown) {
		t.Fatalf("IAM down: got %v", err)
	}
	if !strings.Contains(err.Error(), "may well exist") {
		t.Errorf("the message must not blame the name: %v", err)
	}

	r = newFakeResolver()
	r.stsErr = errors.New("ExpiredToken")
	_, err = Render(context.Background(), map[string]string{"mapUsers": "- userarn: arn:aws:iam::$ACCOUNTID:user/a\n  username: a\n"}, r, Options{})
	if !errors.As(err, &le) || le.Call != "sts:GetCallerIdentity" {
		t.Fatalf("STS down: got %v", err)
	}

	// Served from the last known state: rewritten, with a warning.
	r = newFakeResolver()
	r.stale = errIAMDown
	res, err := Render(context.Background(), data, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertFindings(t, res.Findings, []want{"warning StaleLookup"})
	if !strings.Contains(res.Data["mapRoles"], "AWSReservedSSO_Admin_0123456789abcdef") {
		t.Fatalf("stale answer not used: %s", res.Data["mapRoles"])
	}
}

// TestRenderKeepUnresolved: the resync loop keeps an entry whose permission
// set vanished, with its last ARN, and says so.
func TestRenderKeepUnresolved(t *testing.T) {
	in := "- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Gone_0123456789abcdef\n  permissionset: Gone\n  username: a\n"
	res, err := Render(context.Background(), map[string]string{"mapRoles": in}, newFakeResolver(), Options{KeepUnresolved: true})
	if err != nil {
		t.Fatal(err)
	}
	assertFindings(t, res.Findings, []want{"warning PermissionSetUnresolved mapRoles[0]"})
	if len(res.Changed) != 0 {
		t.Fatalf("changed %v", res.Changed)
	}
	res, _ = Render(context.Background(), map[string]string{"mapRoles": in}, newFakeResolver(), Options{})
	assertFindings(t, res.Findings, []want{"error UnknownPermissionSet mapRoles[0]"})
	if msg := res.Findings[0].Message; !strings.Contains(msg, "Admin, Admin.Ops, Admin.Ops2, Admin_ReadOnly") {
		t.Errorf("message does not list the existing permission sets: %s", msg)
	}
}

func TestRenderDuplicateAfterResolution(t *testing.T) {
	res, err := Render(context.Background(), map[string]string{"mapRoles": "- permissionset: Admin\n  username: a\n" +
		"- rolearn: arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789ABCDEF\n  username: b\n"},
		newFakeResolver(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertFindings(t, res.Findings, []want{"error DuplicateARN mapRoles[1]", "warning PathStripped mapRoles[1]", "warning SSORoleWithoutPermissionSet mapRoles[1]"})
}

func TestRenderNodeRoleValidation(t *testing.T) {
	for _, bad := range []string{"arn:aws:iam::111122223333:user/x", "eks-node", "arn:aws:iam::1:role/x"} {
		if _, err := Render(context.Background(), map[string]string{}, nil, Options{NodeRoleARNs: []string{bad}}); err == nil {
			t.Errorf("node role %q accepted", bad)
		}
	}
}

func TestResultMappings(t *testing.T) {
	res, err := Render(context.Background(), map[string]string{
		"mapRoles": "- permissionset: Admin\n  username: admin\n  groups: [system:masters]\n",
		"mapUsers": "- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n",
	}, newFakeResolver(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Roles) != 1 || res.Roles[0].ARN != "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef" ||
		res.Roles[0].PermissionSet != "Admin" || !equalStrings(res.Roles[0].Groups, []string{"system:masters"}) {
		t.Fatalf("roles: %+v", res.Roles)
	}
	if len(res.Users) != 1 || res.Users[0].Username != "alice" {
		t.Fatalf("users: %+v", res.Users)
	}
}

func equalStrings(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// TestAmbiguousPermissionSet: a permission set two SSO roles claim (the same
// permission set provisioned through two Identity Center regions' paths)
// resolves to the one the resolver picked, and says so, naming both.
func TestAmbiguousPermissionSet(t *testing.T) {
	r := newFakeResolver()
	other := "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_ffffffffffffffff"
	r.ambiguous = map[string][]string{"Admin": {r.roles["Admin"], other}}
	res, err := Render(context.Background(), map[string]string{"mapRoles": "- permissionset: Admin\n  username: a\n"}, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertFindings(t, res.Findings, []want{"warning AmbiguousPermissionSet mapRoles[0]"})
	f := res.Findings[0]
	for _, part := range []string{"2 roles", r.roles["Admin"], other, "most recently created", "write its rolearn without permissionset"} {
		if !strings.Contains(f.String(), part) {
			t.Errorf("the warning lacks %q: %s", part, f)
		}
	}
	if !strings.Contains(res.Data["mapRoles"], r.roles["Admin"]) {
		t.Errorf("not resolved: %s", res.Data["mapRoles"])
	}
}
