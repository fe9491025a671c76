package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// The handlers are tested with the real resolver against the AWS emulator;
// the apiserver's side of admission is proven in e2e/.

const (
	adminARN = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef"
	nodeARN  = "arn:aws:iam::111122223333:role/eks-node"
)

const baseRoles = `# admins
- rolearn: ` + adminARN + `
  permissionset: Admin
  username: admin:{{SessionName}}
  groups:
    - system:masters
- rolearn: ` + nodeARN + `
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
`

type fixture struct {
	h   *Handlers
	reg *prometheus.Registry
	emu *awsemu.Server
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	emu := awsemu.New(awsemu.Config{AccountID: "111122223333", Roles: []awsemu.Role{
		awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1"),
		awsemu.SSORole("ReadOnly", "1111111111111111", "eu-west-1"),
	}})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	cfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := New(Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeARN}, BreakGlassGroups: []string{"platform:break-glass"}},
		awsidentity.New(cfg, awsidentity.Options{}), audit.New(nil, logr.Discard(), reg), logr.Discard())
	return &fixture{h: h, reg: reg, emu: emu}
}

// audited reads aws_auth_webhook_audit_events_total{action,reason}.
func (f *fixture) audited(action audit.Action, reason string) float64 {
	families, _ := f.reg.Gather()
	for _, fam := range families {
		if fam.GetName() != "aws_auth_webhook_audit_events_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["action"] == string(action) && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func configMap(ns, name string, data map[string]string) []byte {
	b, _ := json.Marshal(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data})
	return b
}

type reqOpt func(*admission.Request)

func asUser(name, canonicalARN string, groups ...string) reqOpt {
	return func(r *admission.Request) {
		r.UserInfo = authenticationv1.UserInfo{Username: name, Groups: groups}
		if canonicalARN != "" {
			r.UserInfo.Extra = map[string]authenticationv1.ExtraValue{"canonicalArn": {canonicalARN}, "sessionName": {name}}
		}
	}
}

func dryRun(r *admission.Request) { t := true; r.DryRun = &t }

func review(op admissionv1.Operation, obj, old []byte, opts ...reqOpt) admission.Request {
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Operation: op,
		Namespace: "kube-system", Name: "aws-auth",
		Object: runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
	}}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func TestMutateResolvesAndPatchesOnlyChangedKeys(t *testing.T) {
	f := newFixture(t)
	obj := configMap("kube-system", "aws-auth", map[string]string{
		"mapRoles": "# readers\n- permissionset: ReadOnly\n  username: ro\n  groups: [viewers]\n",
		"mapUsers": "- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n",
	})
	resp := f.h.Mutator().Handle(context.Background(), review(admissionv1.Create, obj, nil))
	if !resp.Allowed || len(resp.Patches) != 1 {
		t.Fatalf("allowed=%v patches=%v result=%v", resp.Allowed, resp.Patches, resp.Result)
	}
	p := resp.Patches[0]
	want := "# readers\n- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_ReadOnly_1111111111111111\n  permissionset: ReadOnly\n  username: ro\n  groups: [viewers]\n" +
		"- rolearn: " + nodeARN + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n"
	if p.Operation != "replace" || p.Path != "/data/mapRoles" || p.Value != want {
		t.Fatalf("patch %s %s:\n%v", p.Operation, p.Path, p.Value)
	}
}

func TestMutateWarnsAndCreatesData(t *testing.T) {
	f := newFixture(t)
	resp := f.h.Mutator().Handle(context.Background(), review(admissionv1.Create, configMap("kube-system", "aws-auth", nil), nil))
	if !resp.Allowed || len(resp.Patches) != 2 || resp.Patches[0].Path != "/data" || resp.Patches[1].Path != "/data/mapRoles" {
		t.Fatalf("allowed=%v patches=%+v", resp.Allowed, resp.Patches)
	}
	obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + "- rolearn: arn:aws:iam::111122223333:role/ci/deployer\n  username: ci\n"})
	resp = f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, obj, obj))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `IAM path "/ci/" was removed`) {
		t.Fatalf("allowed=%v warnings=%v", resp.Allowed, resp.Warnings)
	}
}

func TestRejectionsAreAuditedExceptDryRun(t *testing.T) {
	f := newFixture(t)
	bad := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + "- permissionset: Admn\n  username: typo\n"})
	for _, handler := range []admission.Handler{f.h.Mutator(), f.h.Validator()} {
		resp := handler.Handle(context.Background(), review(admissionv1.Update, bad, nil))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `"Admn" has no role`) || !strings.Contains(resp.Result.Message, "Admin, ReadOnly") {
			t.Fatalf("allowed=%v message=%q", resp.Allowed, resp.Result.Message)
		}
	}
	if n := f.audited(audit.ActionRejected, "UnknownPermissionSet"); n != 2 {
		t.Fatalf("audited %v rejections, want 2", n)
	}
	dry := f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, bad, nil, dryRun))
	real := f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, bad, nil))
	if dry.Allowed || dry.Result.Message != real.Result.Message {
		t.Fatalf("dry run answered differently: %q vs %q", dry.Result.Message, real.Result.Message)
	}
	if n := f.audited(audit.ActionRejected, "UnknownPermissionSet"); n != 3 {
		t.Fatalf("dry run was audited: %v", n)
	}
}

func TestOnlyTheGuardedObject(t *testing.T) {
	f := newFixture(t)
	bad := map[string]string{"mapRoles": "- oops: ["}
	for _, obj := range [][]byte{configMap("kube-system", "other", bad), configMap("default", "aws-auth", bad)} {
		var cm corev1.ConfigMap
		_ = json.Unmarshal(obj, &cm)
		req := review(admissionv1.Update, obj, nil)
		req.Namespace, req.Name = cm.Namespace, cm.Name
		for _, h := range []admission.Handler{f.h.Mutator(), f.h.Validator()} {
			if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Patches) != 0 {
				t.Errorf("%s/%s: allowed=%v patches=%v", cm.Namespace, cm.Name, resp.Allowed, resp.Patches)
			}
		}
	}
	req := review(admissionv1.Create, []byte(`{"kind":"Secret"}`), nil)
	req.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}
	if resp := f.h.Validator().Handle(context.Background(), req); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("a Secret was not refused with 400: %+v", resp.Result)
	}
	req = review(admissionv1.Create, []byte(`not json`), nil)
	if resp := f.h.Mutator().Handle(context.Background(), req); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("a non-JSON object was not refused with 400: %+v", resp.Result)
	}
}

func TestLockoutGuard(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	admin := asUser("admin:alice", adminARN)
	withoutAdmin := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": strings.SplitN(baseRoles, "- rolearn: "+nodeARN, 2)[0][:0] +
		"- rolearn: " + nodeARN + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n"})
	fewerGroups := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": strings.Replace(baseRoles, "system:masters", "viewers", 1)})
	withoutNode := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": strings.SplitN(baseRoles, "- rolearn: "+nodeARN, 2)[0]})
	other := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles +
		"- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_ReadOnly_1111111111111111\n  permissionset: ReadOnly\n  username: ro\n"})
	unresolved := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + "- permissionset: ReadOnly\n  username: ro\n"})

	cases := []struct {
		name   string
		obj    []byte
		op     admissionv1.Operation
		who    reqOpt
		allow  bool
		reason string
	}{
		{"removing your own mapping", withoutAdmin, admissionv1.Update, admin, false, "LockoutSelf"},
		{"taking your own groups", fewerGroups, admissionv1.Update, admin, false, "LockoutSelf"},
		{"someone else may remove it", withoutAdmin, admissionv1.Update, asUser("admin:bob", "arn:aws:iam::111122223333:role/other"), true, ""},
		{"the assumed-role ARN counts too", withoutAdmin, admissionv1.Update,
			asUser("admin:alice", "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice"), false, "LockoutSelf"},
		{"an unrelated edit", other, admissionv1.Update, admin, true, ""},
		{"an object the mutating webhook did not resolve", unresolved, admissionv1.Update, admin, false, "NotResolved"},
		{"removing the node role", withoutNode, admissionv1.Update, asUser("kubernetes-admin", ""), false, "LockoutNodeRole"},
		{"DELETE", nil, admissionv1.Delete, asUser("kubernetes-admin", ""), false, "DeleteRefused"},
		{"break-glass removes its own mapping", withoutAdmin, admissionv1.Update, asUser("admin:alice", adminARN, "platform:break-glass"), true, "LockoutSelf"},
		{"break-glass DELETE", nil, admissionv1.Delete, asUser("root", "", "platform:break-glass"), true, "DeleteRefused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			action := audit.ActionRejected
			if tc.allow {
				action = audit.ActionBreakGlass
			}
			before := f.audited(action, tc.reason)
			resp := f.h.Validator().Handle(context.Background(), review(tc.op, tc.obj, old, tc.who))
			if resp.Allowed != tc.allow {
				t.Fatalf("allowed=%v, want %v: %v", resp.Allowed, tc.allow, resp.Result)
			}
			if tc.reason == "" {
				return
			}
			if got := f.audited(action, tc.reason) - before; got != 1 {
				t.Errorf("%s %s audited %v times, want 1", action, tc.reason, got)
			}
			if !tc.allow && !strings.Contains(resp.Result.Message, "Fix:") {
				t.Errorf("denial does not say how to fix: %s", resp.Result.Message)
			}
			if tc.allow && (len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "break-glass")) {
				t.Errorf("break-glass bypass not shown: %v", resp.Warnings)
			}
		})
	}
}

// TestNoAWSCallsWhenWarm: once the cache is warm, admission makes no AWS call.
func TestNoAWSCallsWhenWarm(t *testing.T) {
	f := newFixture(t)
	obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": "- permissionset: Admin\n  username: a\n"})
	f.h.Mutator().Handle(context.Background(), review(admissionv1.Create, obj, nil))
	f.emu.ResetCalls()
	for i := 0; i < 20; i++ {
		f.h.Mutator().Handle(context.Background(), review(admissionv1.Create, obj, nil))
		f.h.Validator().Handle(context.Background(), review(admissionv1.Update, obj, obj))
	}
	if calls := f.emu.AllCalls(); len(calls) != 0 {
		t.Fatalf("AWS calls with a warm cache: %v", calls)
	}
}

// TestStaleSuffixAdmitted: the mutating webhook resolved a permission set
// from the IAM listing just before the resync loop installed a newer one, so
// the validator now resolves it to another role of the same permission set.
// The write is admitted with a warning (the resync loop writes the new ARN);
// anything else the engine would still rewrite is refused as NotResolved.
func TestStaleSuffixAdmitted(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	staleARN := "arn:aws:iam::111122223333:role/AWSReservedSSO_ReadOnly_ffffffffffffffff"
	admin := asUser("kubernetes-admin", "")
	for _, tc := range []struct {
		name, entry string
		allow       bool
	}{
		{"an older role of the same permission set", "- rolearn: " + staleARN + "\n  permissionset: ReadOnly\n  username: ro\n", true},
		{"with its IAM path", "- rolearn: arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_ReadOnly_ffffffffffffffff\n  permissionset: ReadOnly\n  username: ro\n", false},
		{"the role of another permission set", "- rolearn: " + adminARN + "\n  permissionset: ReadOnly\n  username: ro\n", false},
		{"a role that is not an SSO role", "- rolearn: arn:aws:iam::111122223333:role/ReadOnly\n  permissionset: ReadOnly\n  username: ro\n", false},
		{"no rolearn at all", "- permissionset: ReadOnly\n  username: ro\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + tc.entry})
			before := f.audited(audit.ActionRejected, "NotResolved")
			resp := f.h.Validator().Handle(context.Background(), review(admissionv1.Update, obj, old, admin))
			if resp.Allowed != tc.allow {
				t.Fatalf("allowed=%v, want %v: %v", resp.Allowed, tc.allow, resp.Result)
			}
			if tc.allow {
				if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "mapRoles[2] (permissionset ReadOnly)") ||
					!strings.Contains(resp.Warnings[0], staleARN+" was kept") {
					t.Errorf("warnings: %q", resp.Warnings)
				}
			} else if got := f.audited(audit.ActionRejected, "NotResolved") - before; got != 1 {
				t.Errorf("NotResolved audited %v times, want 1 (%v)", got, resp.Result)
			}
		})
	}
}

// TestLargeEditsWaitTheirTurn: the engine works on at most
// MaxInFlightBytes of aws-auth data at once; a request that cannot get its
// turn before it ends is refused as busy, and nothing is audited or
// changed. Once the turn is free, the same request goes through.
func TestLargeEditsWaitTheirTurn(t *testing.T) {
	f := newFixture(t)
	f.h = New(Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeARN}, MaxInFlightBytes: 64},
		f.h.resolver, f.h.auditor, logr.Discard())
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + "- permissionset: ReadOnly\n  username: ro\n"})
	req := review(admissionv1.Update, obj, old)

	// Another edit holds the whole budget.
	if err := f.h.work.Acquire(context.Background(), 64); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for name, handler := range map[string]admission.Handler{"mutate": f.h.Mutator(), "validate": f.h.Validator()} {
		resp := handler.Handle(ended, req)
		if resp.Allowed || resp.Result == nil || resp.Result.Code != 503 || !strings.Contains(resp.Result.Message, "busy") {
			t.Fatalf("%s while busy: %+v", name, resp.Result)
		}
	}
	f.h.work.Release(64)
	if resp := f.h.Mutator().Handle(context.Background(), req); !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("mutate once free: %+v", resp.Result)
	}
}

// TestItemsReadOnce: from one request to the next, the engine reads only
// the items an edit changed. The validating webhook is sent what the
// mutating one produced, with the stored object: it reads no item at all.
func TestItemsReadOnce(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	ctx := context.Background()
	for i := range 3 {
		data := map[string]string{"mapRoles": baseRoles + fmt.Sprintf("- permissionset: ReadOnly\n  username: ro-%d\n", i)}
		before := f.h.ReadingStats()
		resp := f.h.Mutator().Handle(ctx, review(admissionv1.Update, configMap("kube-system", "aws-auth", data), old, asUser("alice", adminARN)))
		if !resp.Allowed {
			t.Fatalf("mutate %d: %+v", i, resp.Result)
		}
		afterMutate := f.h.ReadingStats()
		// The new item as written and as resolved; the first time, every
		// item of the stored text too.
		if read := afterMutate.Misses - before.Misses; i > 0 && read != 2 {
			t.Fatalf("mutate %d read %d items; want 2 (the new entry, as written and as resolved)", i, read)
		}
		res, err := awsauth.Render(ctx, data, f.h.resolver, awsauth.Options{NodeRoleARNs: []string{nodeARN}})
		if err != nil {
			t.Fatal(err)
		}
		resp = f.h.Validator().Handle(ctx, review(admissionv1.Update, configMap("kube-system", "aws-auth", res.Data), old, asUser("alice", adminARN)))
		if !resp.Allowed {
			t.Fatalf("validate %d: %+v", i, resp.Result)
		}
		after := f.h.ReadingStats()
		if after.Misses != afterMutate.Misses || after.Hits == afterMutate.Hits {
			t.Fatalf("validate %d: readings %+v -> %+v; want hits and no item read", i, afterMutate, after)
		}
	}
}

// TestGuardMatchesAsTheAuthenticator: the guard finds the editor's mapping
// as the authenticator does (a user with its path, a role without),
// protects the username of the editor's and the node-role entries, judges
// the stored object as the authenticator loads it even when the engine
// refuses it, and refuses when it cannot tell.
func TestGuardMatchesAsTheAuthenticator(t *testing.T) {
	f := newFixture(t)
	const alice = "arn:aws:iam::111122223333:user/team/alice"
	users := "- userarn: " + alice + "\n  username: alice\n  groups: [system:masters]\n"
	cm := func(roles, users string) []byte {
		return configMap("kube-system", "aws-auth", map[string]string{"mapRoles": roles, "mapUsers": users})
	}
	stored := cm(baseRoles, users)
	// A stored object the engine refuses (a second YAML document after the
	// entries) that the authenticator loads: the first document maps alice.
	brokenStored := cm(baseRoles, users+"---\n- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n")
	// !!binary: the authenticator decodes the base64 to alice's ARN.
	binaryStored := cm(baseRoles, "- userarn: !!binary YXJuOmF3czppYW06OjExMTEyMjIyMzMzMzp1c2VyL3RlYW0vYWxpY2U=\n  username: alice\n  groups: [system:masters]\n")
	aliceWho := asUser("alice", alice)
	cases := []struct {
		name, reason string
		obj, old     []byte
		who          reqOpt
	}{
		{"a user's path is part of the match: user/team/alice to user/alice", "LockoutSelf",
			cm(baseRoles, strings.Replace(users, "user/team/alice", "user/alice", 1)), stored, aliceWho},
		{"the username of your own entry", "LockoutSelf",
			cm(baseRoles, strings.Replace(users, "username: alice", "username: alice2", 1)), stored, aliceWho},
		{"the username of a role you are signed in with", "LockoutSelf",
			cm(strings.Replace(baseRoles, "admin:{{SessionName}}", "root", 1), users), stored,
			asUser("admin:alice", "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice")},
		{"the username of the node-role entry", "LockoutNodeRole",
			cm(strings.Replace(baseRoles, "system:node:{{EC2PrivateDNSName}}", "node", 1), users), stored, asUser("kubernetes-admin", "")},
		{"a stored object the engine refuses still protects you", "LockoutSelf",
			cm(baseRoles, ""), brokenStored, aliceWho},
		{"a !!binary ARN in the stored object still protects you", "LockoutSelf",
			cm(baseRoles, ""), binaryStored, aliceWho},
		{"an identity the authenticator does not map", "GuardCannotTell",
			cm(baseRoles, ""), stored, asUser("x", "arn:aws-foo:iam::111122223333:user/x")},
		{"two entries for you that differ", "GuardCannotTell",
			cm(baseRoles, ""), cm(baseRoles, users+"- userarn: arn:aws:iam::111122223333:user/team/ALICE\n  username: other\n"), aliceWho},
		{"an update without oldObject", "GuardCannotTell", stored, nil, aliceWho},
		{"an account you are signed in through", "LockoutSelf",
			configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles}),
			configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles, "mapAccounts": "- \"111122223333\"\n"}),
			asUser("arn:aws:iam::111122223333:user/carol", "arn:aws:iam::111122223333:user/carol")},
		{"another node role's entry, not configured here", "LockoutNodeRole",
			stored, cm(baseRoles+"- rolearn: arn:aws:iam::111122223333:role/other-nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n", users),
			asUser("kubernetes-admin", "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.audited(audit.ActionRejected, tc.reason)
			resp := f.h.Validator().Handle(context.Background(), review(admissionv1.Update, tc.obj, tc.old, tc.who))
			if resp.Allowed {
				t.Fatalf("allowed; want %s", tc.reason)
			}
			if got := f.audited(audit.ActionRejected, tc.reason) - before; got != 1 {
				t.Errorf("%s audited %v times, want 1: %s", tc.reason, got, resp.Result.Message)
			}
			if !strings.Contains(resp.Result.Message, "Fix:") || !strings.Contains(resp.Result.Message, "break-glass") {
				t.Errorf("the denial does not say the way through: %s", resp.Result.Message)
			}
			// Break-glass is the way through, audited.
			bg := review(admissionv1.Update, tc.obj, tc.old, tc.who)
			bg.UserInfo.Groups = append(bg.UserInfo.Groups, "platform:break-glass")
			if resp := f.h.Validator().Handle(context.Background(), bg); !resp.Allowed {
				t.Errorf("break-glass refused: %s", resp.Result.Message)
			}
		})
	}
	// What still matches is allowed: a role's path is not part of the match
	// (the engine strips it), case is not either.
	ok := cm(baseRoles, strings.Replace(users, "user/team/alice", "user/team/ALICE", 1))
	if resp := f.h.Validator().Handle(context.Background(), review(admissionv1.Update, ok, stored, aliceWho)); !resp.Allowed {
		t.Errorf("a change of case only was refused: %s", resp.Result.Message)
	}
}

// TestNodeRoleRestored: deleting the entry of a node role the webhook is
// configured with is repaired, not refused: the mutating webhook adds it
// back, says so in a warning, and audits it.
func TestNodeRoleRestored(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	withoutNode := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": strings.SplitN(baseRoles, "- rolearn: "+nodeARN, 2)[0]})
	resp := f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, withoutNode, old, asUser("kubernetes-admin", "")))
	if !resp.Allowed || len(resp.Patches) != 1 || !strings.Contains(fmt.Sprint(resp.Patches[0].Value), "rolearn: "+nodeARN) {
		t.Fatalf("allowed=%v patches=%v", resp.Allowed, resp.Patches)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "removed the node-role entry for "+nodeARN) ||
		!strings.Contains(resp.Warnings[0], "added back") || !strings.Contains(resp.Warnings[0], "--node-role-arn") {
		t.Errorf("warnings: %q", resp.Warnings)
	}
	if n := f.audited(audit.ActionRepaired, "NodeRoleRestored"); n != 1 {
		t.Errorf("audited %v times, want 1", n)
	}
	// On a CREATE (nothing removed) it is an ordinary note, not a repair.
	resp = f.h.Mutator().Handle(context.Background(), review(admissionv1.Create, withoutNode, nil, asUser("kubernetes-admin", "")))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "NodeRoleAdded") && !strings.Contains(resp.Warnings[0], "so one was added") {
		t.Errorf("CREATE warnings: %q", resp.Warnings)
	}
	if n := f.audited(audit.ActionRepaired, "NodeRoleRestored"); n != 1 {
		t.Errorf("a CREATE was audited as a repair: %v", n)
	}
}

// TestDocumentLevelRulesThroughTheWebhook: the classes the engine refuses
// are refused by the webhook, audited, with the character named.
func TestDocumentLevelRulesThroughTheWebhook(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	for _, tc := range []struct {
		name   string
		data   map[string]string
		reason string
		want   string
	}{
		{"a near-miss data key", map[string]string{"mapRoles": baseRoles, "map_users": "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n"},
			"IgnoredKey", "did you mean mapUsers?"},
		{"a line separator in a comment", map[string]string{"mapRoles": baseRoles + "# note\u2028- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n  groups: [system:masters]\n"},
			"LineBreakCharacter", "U+2028 LINE SEPARATOR"},
		{"a zero-width space in an ARN", map[string]string{"mapRoles": baseRoles + "- rolearn: arn:aws:iam::111122223333:role/x\u200by\n  username: x\n"},
			"InvisibleCharacter", "U+200B ZERO WIDTH SPACE"},
		{"a Cyrillic a in system:masters", map[string]string{"mapRoles": baseRoles + "- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n  groups: [system:m\u0430sters]\n"},
			"ConfusableCharacter", "U+0430 CYRILLIC SMALL LETTER A"},
		{"group: for groups", map[string]string{"mapRoles": baseRoles + "- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n  group: [viewers]\n"},
			"MisspeltKey", `did you mean "groups"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := configMap("kube-system", "aws-auth", tc.data)
			for name, h := range map[string]admission.Handler{"mutate": f.h.Mutator(), "validate": f.h.Validator()} {
				before := f.audited(audit.ActionRejected, tc.reason)
				resp := h.Handle(context.Background(), review(admissionv1.Update, obj, old, asUser("kubernetes-admin", "")))
				if resp.Allowed || !strings.Contains(resp.Result.Message, tc.want) {
					t.Errorf("%s: allowed=%v message=%q", name, resp.Allowed, resp.Result.Message)
				}
				if got := f.audited(audit.ActionRejected, tc.reason) - before; got != 1 {
					t.Errorf("%s: %s audited %v times", name, tc.reason, got)
				}
			}
		})
	}
}

// TestAmbiguousPermissionSetWarns: a permission set two SSO roles claim
// (provisioned through two Identity Center regions' paths) resolves to the
// newest, and kubectl is told, with both roles named.
func TestAmbiguousPermissionSetWarns(t *testing.T) {
	older := awsemu.SSORole("Admin", "aaaaaaaaaaaaaaaa", "eu-west-1")
	older.CreateDate = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	newer := awsemu.SSORole("Admin", "bbbbbbbbbbbbbbbb", "")
	newer.CreateDate = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	emu := awsemu.New(awsemu.Config{AccountID: "111122223333", Roles: []awsemu.Role{older, newer}})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	cfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeARN}},
		awsidentity.New(cfg, awsidentity.Options{}), audit.New(nil, logr.Discard(), prometheus.NewRegistry()), logr.Discard())
	obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": "- permissionset: Admin\n  username: admin\n" +
		"- rolearn: " + nodeARN + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n"})
	resp := h.Mutator().Handle(context.Background(), review(admissionv1.Create, obj, nil))
	if !resp.Allowed || len(resp.Patches) != 1 || !strings.Contains(fmt.Sprint(resp.Patches[0].Value), "AWSReservedSSO_Admin_bbbbbbbbbbbbbbbb") {
		t.Fatalf("allowed=%v patches=%v", resp.Allowed, resp.Patches)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "has 2 roles in this account") ||
		!strings.Contains(resp.Warnings[0], "AWSReservedSSO_Admin_aaaaaaaaaaaaaaaa") || !strings.Contains(resp.Warnings[0], "the most recently created") {
		t.Errorf("warnings: %q", resp.Warnings)
	}
}
