package manifest

import (
	"strings"
	"testing"
)

const kubectlYAML = `apiVersion: v1
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/eks-node
      username: system:node:{{EC2PrivateDNSName}}
      groups:
        - system:bootstrappers
        - system:nodes
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/alice
      username: alice
kind: ConfigMap
metadata:
  # a comment the user keeps
  name: aws-auth
  namespace: kube-system
  resourceVersion: "1234"
`

func TestParse(t *testing.T) {
	cm, err := Parse([]byte(kubectlYAML))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Name != "aws-auth" || cm.Namespace != "kube-system" || !strings.HasPrefix(cm.Data["mapRoles"], "- rolearn:") || len(cm.Data) != 2 {
		t.Fatalf("%+v", cm)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"not yaml":        "a: [",
		"not a configmap": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n",
		// The authenticator's "missing bar" fixture: the list is not a string.
		"missing bar": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n  mapRoles:\n    - rolearn: x\n",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "missing bar" && !strings.Contains(err.Error(), "forget the '|'") {
			t.Errorf("missing bar: unhelpful error %v", err)
		}
	}
}

func TestWithDataSplicesOnlyTheChangedKey(t *testing.T) {
	cm, err := Parse([]byte(kubectlYAML))
	if err != nil {
		t.Fatal(err)
	}
	newRoles := cm.Data["mapRoles"] + "- rolearn: arn:aws:iam::111122223333:role/admin\n  username: admin\n"
	out, err := cm.WithData(map[string]string{"mapRoles": newRoles})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(kubectlYAML, "        - system:nodes\n", "        - system:nodes\n    - rolearn: arn:aws:iam::111122223333:role/admin\n      username: admin\n", 1)
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestWithDataAddsKeyAndHandlesOddText(t *testing.T) {
	in := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n  mapUsers: \"- userarn: x\\n\"\n"
	cm, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]string{
		"mapUsers": "- userarn: y\n",
		"mapRoles": "  - rolearn: indented first line\n\n",
		"note":     "no trailing newline",
	}
	out, err := cm.WithData(changes)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if back.Data[k] != v {
			t.Errorf("%s: got %q want %q\n%s", k, back.Data[k], v, out)
		}
	}
	if !strings.HasPrefix(string(out), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n") {
		t.Errorf("metadata disturbed:\n%s", out)
	}
}

func TestWithDataJSONInput(t *testing.T) {
	in := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"aws-auth","namespace":"kube-system"},"data":{"mapRoles":"- rolearn: a\n"}}`
	cm, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cm.WithData(map[string]string{"mapRoles": "- rolearn: b\n"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil || back.Data["mapRoles"] != "- rolearn: b\n" || back.Name != "aws-auth" {
		t.Fatalf("err=%v out=%s", err, out)
	}
}

// TestParseRefusesWhatKubectlReadsOtherwise: a manifest that kubectl
// (sigs.k8s.io/yaml, the last of two keys winning, every document applied)
// or an editor would read differently from how Parse reads it is refused.
func TestParseRefusesWhatKubectlReadsOtherwise(t *testing.T) {
	head := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\n"
	for name, tc := range map[string]struct{ in, want string }{
		"two data:":               {head + "data:\n  mapRoles: a\ndata:\n  mapRoles: b\n", "data: is written twice (lines 6 and 8)"},
		"a data key twice":        {head + "data:\n  mapRoles: a\n  mapRoles: b\n", "data.mapRoles: is written twice"},
		"metadata.name twice":     {head + "  name: other\ndata: {}\n", "metadata.name: is written twice"},
		"two documents":           {head + "data: {}\n---\n" + head + "data: {}\n", "more than one YAML document"},
		"a line separator":        {head + "data:\n  mapRoles: |\n    - a # x\u2028    - b\n", "U+2028 LINE SEPARATOR"},
		"a next line":             {head + "data:\n  mapRoles: |\n    - a # x\u0085    - b\n", "U+0085 NEXT LINE (NEL)"},
		"a bidi control":          {head + "data:\n  notes: \"\u202e\"\n", "U+202E RIGHT-TO-LEFT OVERRIDE"},
		"an invisible key":        {head + "data:\n  mapRoles: |\n    - a\n  \u00ad  username: b\n", "U+00AD SOFT HYPHEN"},
		"a misspelt data":         {strings.Replace(head, "kind:", "kind:", 1) + "dat\u0430:\n  mapRoles: a\n", "did you mean data?"},
		"an unknown field":        {head + "datas:\n  mapRoles: a\n", "did you mean data?"},
		"a field kubectl refuses": {head + "spec: {}\n", `"spec" is not a ConfigMap field`},
		"a merge key":             {head + "data:\n  <<: {mapRoles: a}\n", "merge key"},
		"an alias":                {"apiVersion: v1\nkind: &k ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n  notes: *k\n", "data.notes is a YAML alias (*k)"},
		"a tag":                   {head + "data:\n  mapRoles: !foo a\n", "has the tag !foo"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
	// As kubectl get -o yaml writes a value that holds a line separator:
	// escaped, so the manifest reads the same everywhere; the engine judges
	// the value.
	cm, err := Parse([]byte(head + "data:\n  mapRoles: \"- a # x\\u2028- b\\n\"\n"))
	if err != nil || cm.Data["mapRoles"] != "- a # x\u2028- b\n" {
		t.Errorf("escaped line separator: %q, %v", cm.Data["mapRoles"], err)
	}
}

func TestLineOf(t *testing.T) {
	cm, err := Parse([]byte(kubectlYAML))
	if err != nil {
		t.Fatal(err)
	}
	// mapRoles: | is on line 3; line 1 of the value is line 4 of the file.
	if got, ok := cm.LineOf("mapRoles", 1); !ok || got != 4 {
		t.Errorf("LineOf(mapRoles, 1) = %d, %v; want 4", got, ok)
	}
	if got, ok := cm.LineOf("mapUsers", 2); !ok || got != 11 {
		t.Errorf("LineOf(mapUsers, 2) = %d, %v; want 11", got, ok)
	}
	quoted, _ := Parse([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n  mapRoles: \"- a\\n- b\\n\"\n"))
	if _, ok := quoted.LineOf("mapRoles", 2); ok {
		t.Error("a quoted value's lines are not the file's")
	}
}

// TestWithDataSplicesQuotedAndPlainValues: a quoted value stays quoted,
// with what follows it on the line; a plain one becomes a block in place,
// without a stray blank line; every other byte stays.
func TestWithDataSplicesQuotedAndPlainValues(t *testing.T) {
	head := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\ndata:\n"
	in := head + "  mapUsers: \"- userarn: x\\n\" # kept\n  mapRoles: old\n  other: \"a\n    b\"\n"
	cm, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cm.WithData(map[string]string{
		"mapUsers": "- userarn: y\n",
		"mapRoles": "- rolearn: z\n",
		"other":    "c",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := head + "  mapUsers: \"- userarn: y\\n\" # kept\n  mapRoles: |\n    - rolearn: z\n  other: \"c\"\n"
	if string(out) != want {
		t.Fatalf("got:\n%q\nwant:\n%q", out, want)
	}
}
