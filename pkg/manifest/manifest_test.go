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
