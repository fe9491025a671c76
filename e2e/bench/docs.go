package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// The documents: aws-auth shaped like a real one (the same shape as the
// engine benchmarks in pkg/awsauth/bench_test.go): mostly IAM Identity
// Center permission sets already resolved by the webhook, some plain role
// ARNs, the node role, comments.

const (
	account  = "111122223333"
	nodeRole = "arn:aws:iam::" + account + ":role/eks-node"
	// region of the IAM Identity Center instance: its roles have a
	// regional path, which the webhook strips.
	region = "eu-west-1"
)

func permissionSet(i int) string { return fmt.Sprintf("Team%04d", i) }

func suffix(i int) string { return fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15) }

func roleARN(i int) string {
	return fmt.Sprintf("arn:aws:iam::%s:role/AWSReservedSSO_%s_%s", account, permissionSet(i), suffix(i))
}

// ssoRoles are the roles of permission sets 0..n-1, as Identity Center
// creates them (under a regional path: the webhook strips it).
func ssoRoles(n int) []awsemu.Role {
	roles := make([]awsemu.Role, n)
	for i := range roles {
		roles[i] = awsemu.SSORole(permissionSet(i), suffix(i), region)
	}
	return roles
}

// document returns aws-auth data with n mapRoles entries (node role first),
// using permission sets 0..maxPS-1 at most once each; n < 0 fills the
// ConfigMap to near its 1 MiB limit.
func document(n, maxPS int) (map[string]string, int) {
	var roles strings.Builder
	roles.WriteString("- rolearn: " + nodeRole + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n")
	users := "- userarn: arn:aws:iam::" + account + ":user/alice\n  username: alice\n  groups:\n    - system:masters\n"
	count, ps := 1, 0
	for i := 1; n < 0 || count < n; i++ {
		var b strings.Builder
		switch {
		case i%3 != 2 && ps < maxPS:
			if i%10 == 1 {
				fmt.Fprintf(&b, "# team %d: on-call platform engineers\n", i)
			}
			fmt.Fprintf(&b, "- rolearn: %s\n  permissionset: %s\n  username: team%04d:{{SessionName}}\n  groups:\n    - team%04d-admins\n    - team%04d-viewers\n",
				roleARN(ps), permissionSet(ps), i, i, i)
			ps++
		default:
			fmt.Fprintf(&b, "- rolearn: arn:aws:iam::%s:role/ci-deployer-%04d\n  username: ci-%04d\n  groups:\n    - ci-deployers\n    - team%04d-viewers\n", account, i, i, i)
		}
		if n < 0 && roles.Len()+b.Len()+len(users)+4096 > awsauth.MaxConfigMapBytes {
			break
		}
		roles.WriteString(b.String())
		count++
	}
	return map[string]string{awsauth.KeyMapRoles: roles.String(), awsauth.KeyMapUsers: users}, count
}

// editor is who makes the edits: signed in through the authenticator with
// the role of the first permission-set entry, which no edit removes, so
// the lockout guard has a mapping to check and admits every edit.
func editor() authenticationv1.UserInfo {
	return authenticationv1.UserInfo{
		Username: "alice", Groups: []string{"system:authenticated"},
		Extra: map[string]authenticationv1.ExtraValue{
			"canonicalArn": {roleARN(0)},
			"sessionName":  {"alice"},
		},
	}
}

// Placeholders in the request templates: every request gets its own
// sequence number, so no two requests are the same.
const (
	phSeq = "QQSEQQQ"
	phPS  = "QQPSQQ"
	phARN = "QQARNQQ"
)

// edit is a realistic edit of data, with placeholders: kind 0 adds a team
// written as a permission set (the webhook resolves it), kind 1 adds a
// group to an existing entry (nothing to resolve). mutated is what the
// mutating webhook makes of it.
func edit(data map[string]string, kind int) (edited, mutated map[string]string) {
	edited, mutated = map[string]string{}, map[string]string{}
	for k, v := range data {
		edited[k], mutated[k] = v, v
	}
	roles := data[awsauth.KeyMapRoles]
	if kind == 0 {
		entry := "  permissionset: " + phPS + "\n  username: edit-" + phSeq + ":{{SessionName}}\n  groups:\n    - edit-" + phSeq + "\n"
		edited[awsauth.KeyMapRoles] = roles + "-" + entry[1:]
		mutated[awsauth.KeyMapRoles] = roles + "- rolearn: " + phARN + "\n" + entry
		return edited, mutated
	}
	// The second entry's groups.
	at := strings.Index(roles, "  groups:\n")
	at += strings.Index(roles[at+1:], "  groups:\n") + 1 + len("  groups:\n")
	edited[awsauth.KeyMapRoles] = roles[:at] + "    - edit-" + phSeq + "\n" + roles[at:]
	mutated[awsauth.KeyMapRoles] = edited[awsauth.KeyMapRoles]
	return edited, mutated
}

// extraPS permission sets exist in the account beyond those the document
// uses, for the edits to add.
const extraPS = 50

// template is a request body split at its placeholders.
type template struct {
	parts [][]byte
	holes []string // holes[i] follows parts[i]
}

func newTemplate(body []byte) template {
	var t template
	rest := string(body)
	for {
		at, which := -1, ""
		for _, ph := range []string{phSeq, phPS, phARN} {
			if i := strings.Index(rest, ph); i >= 0 && (at < 0 || i < at) {
				at, which = i, ph
			}
		}
		if at < 0 {
			t.parts = append(t.parts, []byte(rest))
			return t
		}
		t.parts = append(t.parts, []byte(rest[:at]))
		t.holes = append(t.holes, which)
		rest = rest[at+len(which):]
	}
}

func (t template) fill(values map[string]string) []byte {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	b := make([]byte, 0, n+64*len(t.holes))
	for i, p := range t.parts {
		b = append(b, p...)
		if i < len(t.holes) {
			b = append(b, values[t.holes[i]]...)
		}
	}
	return b
}

func configMap(data map[string]string, rv string) []byte {
	b, err := json.Marshal(&corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth", UID: "2c0b1f0e-3f7a-4c55-9d5e-aws-auth", ResourceVersion: rv},
		Data:       data,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// review encodes an AdmissionReview as the apiserver sends it.
func review(uid string, op admissionv1.Operation, obj, old []byte) []byte {
	b, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(uid),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Name:      "aws-auth",
			Namespace: "kube-system",
			Operation: op,
			UserInfo:  editor(),
			Object:    runtime.RawExtension{Raw: obj},
			OldObject: runtime.RawExtension{Raw: old},
			DryRun:    new(bool),
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// workload is the requests of one scenario: for each edit, what the
// apiserver sends to /mutate (the edit as written) and then to /validate
// (the edit as the mutating webhook left it), with the stored object as
// oldObject. Request n is edit kind n%2 with sequence number n.
type workload struct {
	name     string
	entries  int
	bytes    int // size of the stored object's data
	used     int // permission sets the document uses: 0..used-1
	extra    int // permission sets the edits add: used..used+extra-1
	mutate   [2]template
	validate [2]template
}

func (w *workload) values(n int) map[string]string {
	ps := w.used + (n/2)%w.extra
	return map[string]string{phSeq: strconv.Itoa(n), phPS: permissionSet(ps), phARN: roleARN(ps)}
}

// requests returns the bodies of request n for /mutate and /validate.
func (w *workload) requests(n int) (mutate, validate []byte) {
	v := w.values(n)
	return w.mutate[n%2].fill(v), w.validate[n%2].fill(v)
}

// buildWorkload makes the requests of a document of n entries (n < 0:
// ~1 MiB), and checks with the engine itself — with the answers the
// emulator's account gives — that /validate gets exactly what /mutate
// produces.
func buildWorkload(ctx context.Context, name string, n int, r awsauth.Resolver) (*workload, error) {
	return buildWorkloadPS(ctx, name, n, 4000+extraPS, r)
}

// buildWorkloadPS is buildWorkload for an account with psBudget permission
// sets (0..psBudget-1).
func buildWorkloadPS(ctx context.Context, name string, n, psBudget int, r awsauth.Resolver) (*workload, error) {
	extra := min(extraPS, psBudget/2)
	stored, count := document(n, psBudget-extra)
	w := &workload{name: name, entries: count, used: usedPS(stored), extra: extra}
	for key, v := range stored {
		w.bytes += len(key) + len(v)
	}
	old := configMap(stored, "1000")
	for kind := range 2 {
		edited, mutated := edit(stored, kind)
		uid := name + "-" + phSeq
		w.mutate[kind] = newTemplate(review(uid+"-m", admissionv1.Update, configMap(edited, "1000"), old))
		w.validate[kind] = newTemplate(review(uid+"-v", admissionv1.Update, configMap(mutated, "1000"), old))
	}
	for _, seq := range []int{0, 1, 2, 3, 98, 99} {
		m, v := w.requests(seq)
		var in, out admissionv1.AdmissionReview
		if err := json.Unmarshal(m, &in); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(v, &out); err != nil {
			return nil, err
		}
		var edited, want corev1.ConfigMap
		if err := json.Unmarshal(in.Request.Object.Raw, &edited); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(out.Request.Object.Raw, &want); err != nil {
			return nil, err
		}
		res, err := awsauth.Render(ctx, edited.Data, r, awsauth.Options{NodeRoleARNs: []string{nodeRole}})
		if err != nil {
			return nil, fmt.Errorf("rendering edit %d: %w", seq, err)
		}
		if res.Findings.HasErrors() {
			return nil, fmt.Errorf("edit %d is rejected: %s", seq, strings.Join(res.Findings.Errors().Strings(), "; "))
		}
		if len(res.Data) != len(want.Data) {
			return nil, fmt.Errorf("edit %d: the engine writes keys %v, the workload expects %d", seq, res.Changed, len(want.Data))
		}
		for key := range res.Data {
			if res.Data[key] != want.Data[key] {
				return nil, fmt.Errorf("edit %d: the engine writes %s differently from what the workload expects", seq, key)
			}
		}
	}
	return w, nil
}

// usedPS counts the permission sets a document uses (0..n-1).
func usedPS(data map[string]string) int {
	return strings.Count(data[awsauth.KeyMapRoles], "  permissionset: ")
}
