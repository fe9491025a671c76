//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// The account the emulator serves and the roles in it.
const (
	whAccount    = "111122223333"
	whRegion     = "eu-west-1"
	whBreakGlass = "platform:break-glass"
	// The roles of the permission sets, so that expected texts can be
	// written out (the resync subtests rotate Ops).
	whReadOnlyRole = "AWSReservedSSO_ReadOnly_fedcba9876543210"
	whDevRole      = "AWSReservedSSO_Dev_1111111111111111"
	whOpsRole      = "AWSReservedSSO_Ops_2222222222222222"
	// The interval of the resync loop: short, so the resync proof is quick.
	whResyncInterval = time.Second
)

func whARN(role string) string { return "arn:aws:iam::" + whAccount + ":role/" + role }

// The node role entry the webhook appends (the server learns the node role
// from the emulator's instance metadata), indented like the entries of the
// documents below.
const whNodeEntry = `- rolearn: arn:aws:iam::111122223333:role/eks-node-group-1
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
`

var whAWSAuth = types.NamespacedName{Namespace: metav1.NamespaceSystem, Name: "aws-auth"}

// webhookSuite is one control plane with the webhook configurations
// registered, one AWS emulator and one `aws-auth-webhook serve` process,
// shared by every subtest of TestAdmissionWebhook (they run one after the
// other).
type webhookSuite struct {
	cp  *framework.ControlPlane
	emu *awsemu.Server
	wh  *framework.WebhookProcess
	// opsRole is the Ops permission set's role now (the resync subtests
	// rotate it).
	opsRole string
}

// TestAdmissionWebhook runs the real binary (`aws-auth-webhook serve`)
// behind a real kube-apiserver, registered with the webhook configurations
// the chart ships, and drives it with kubectl and client-go.
func TestAdmissionWebhook(t *testing.T) {
	start := time.Now()
	mutating, validating := framework.WebhookConfigurations(framework.WebhookScope{})
	cp := framework.StartControlPlaneWith(t, framework.Options{Webhooks: envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
	}})
	emu := framework.StartEmulator(t, awsemu.Config{
		AccountID:    whAccount,
		Region:       whRegion,
		NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", whRegion),
			awsemu.SSORole("ReadOnly", "fedcba9876543210", whRegion),
			awsemu.SSORole("Admin_ReadOnly", "aaaaaaaaaaaaaaaa", whRegion),
			awsemu.SSORole("Dev", "1111111111111111", whRegion),
			awsemu.SSORole("Ops", "2222222222222222", whRegion),
			{Name: "eks-node-group-1"},
			{Name: "github-deployer", Path: "/ci/"},
		},
	})
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, Pprof: true, Args: []string{
		"--resync-interval=" + whResyncInterval.String(),
		"--break-glass-group=" + whBreakGlass,
	}})
	s := &webhookSuite{cp: cp, emu: emu, wh: wh, opsRole: whOpsRole}
	t.Logf("setup: %v", time.Since(start).Round(time.Millisecond))

	t.Run("ServesTLSHealthAndMetrics", s.testServes)
	t.Run("ApplyAndEditStoreTheResolvedObject", s.testApplyAndEdit)
	t.Run("RefusedWithTheEngineMessagesAndAudited", s.testRefusals)
	t.Run("DeleteRefused", s.testDeleteRefused)
	t.Run("LockoutSelfRefusedBreakGlassAllowed", s.testLockout)
	t.Run("GuardMatchesAsTheAuthenticatorAndRestoresNodeRole", s.testGuardAsAuthenticator)
	t.Run("ResyncRewritesARotatedPermissionSet", s.testResync)
	t.Run("ResyncNeverLosesAConcurrentEdit", s.testResyncConcurrentEdit)
	t.Run("OtherConfigMapsAreNeverSent", s.testOtherConfigMaps)
	t.Run("DryRunAnswersAlikeAndRecordsNothing", s.testDryRun)
	t.Run("HeapProfileSamplesTheServersWorkWhenAsked", s.testHeapProfile)

	if wh.Exited() {
		t.Errorf("the webhook process exited during the tests")
	}
}

// --- the subtests ---------------------------------------------------------

// testHeapProfile: with --pprof-bind-address the heap profile samples what
// serve allocates while it answers (main turns sampling off, serve turns it
// back on only then); run last, after the other subtests' admissions.
func (s *webhookSuite) testHeapProfile(t *testing.T) {
	code, body := s.wh.Get(t, s.wh.PprofAddr, "/debug/pprof/heap?debug=1")
	if code != http.StatusOK {
		t.Fatalf("GET /debug/pprof/heap: %d %s", code, body)
	}
	if !strings.Contains(body, "aws-auth-webhook/pkg/admission.") {
		t.Fatalf("the heap profile holds no sample from the admission handlers:\n%.2000s", body)
	}
}

// testServes: HTTPS with envtest's certificate and TLS 1.2 at least;
// /healthz and /readyz on the health port; Prometheus metrics.
func (s *webhookSuite) testServes(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := s.wh.Get(t, s.wh.HealthAddr, path); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.cp.Webhook.LocalServingCAData) {
		t.Fatal("envtest's webhook CA is not PEM")
	}
	st, err := s.wh.DialTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake with the webhook, verifying envtest's CA: %v", err)
	}
	if st.Version < tls.VersionTLS12 {
		t.Errorf("negotiated TLS version %x, want 1.2 or newer", st.Version)
	}
	_, err = s.wh.DialTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Error("the webhook accepted a TLS 1.1 handshake")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.1 handshake failed, but not for its version: %v", err)
	}
	m := s.wh.Metrics(t)
	for _, name := range []string{"aws_auth_webhook_sso_role_listings_total", "aws_auth_webhook_resync_runs_total"} {
		if !m.Has(name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// aws_auth_webhook_audit_events_total has samples once something was
	// audited: testRefusals and testDryRun check it.
}

// testApplyAndEdit: kubectl apply, then kubectl edit (KUBE_EDITOR running
// sed on the file kubectl hands it), of permissionset, $ACCOUNTID and pathed
// ARNs: the stored text is the resolved one, every comment kept, and
// kubectl prints the warnings.
func (s *webhookSuite) testApplyAndEdit(t *testing.T) {
	s.deleteAWSAuth(t)
	mapRoles := `# Platform admins sign in through IAM Identity Center.
- permissionset: Admin   # full access
  username: "admin:{{SessionName}}"
  groups:
    - system:masters

# CI deploys with its own role (pasted with its IAM path).
- rolearn: arn:aws:iam::$ACCOUNTID:role/ci/github-deployer
  username: deployer
  groups: [deployers]
`
	mapUsers := `# break-glass user, outside Identity Center
- userarn: arn:aws:iam::$ACCOUNTID:user/break-glass
  username: break-glass
  groups:
    - system:masters
`
	res := s.kubectl(t, framework.KubectlOptions{Stdin: whManifest("kube-system", "aws-auth", mapRoles, mapUsers)}, "apply", "-f", "-")
	if res.ExitCode != 0 {
		t.Fatalf("apply refused:\n%s", res)
	}
	wantRoles := `# Platform admins sign in through IAM Identity Center.
- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef
  permissionset: Admin   # full access
  username: "admin:{{SessionName}}"
  groups:
    - system:masters

# CI deploys with its own role (pasted with its IAM path).
- rolearn: arn:aws:iam::111122223333:role/github-deployer
  username: deployer
  groups: [deployers]
` + whNodeEntry
	wantUsers := `# break-glass user, outside Identity Center
- userarn: arn:aws:iam::111122223333:user/break-glass
  username: break-glass
  groups:
    - system:masters
`
	cm := s.get(t)
	assertText(t, "mapRoles after kubectl apply", cm.Data["mapRoles"], wantRoles)
	assertText(t, "mapUsers after kubectl apply", cm.Data["mapUsers"], wantUsers)
	assertContains(t, "kubectl apply stderr", res.Stderr,
		`Warning: aws-auth: mapRoles[1]`,
		`the IAM path "/ci/" was removed from the role ARN (the authenticator compares ARNs without it). Fix: write role ARNs without their path`)

	// kubectl edit: the editor inserts a permission-set entry with a
	// comment, and a pathed $ACCOUNTID role, into the text kubectl shows.
	editor := s.editor(t, `/^    # CI deploys/i\
    # Auditors read everything (added with kubectl edit).\
    - permissionset: ReadOnly\
      username: "auditor:{{SessionName}}"\
      groups: [auditors]
/^      groups: \[deployers\]$/a\
    - rolearn: arn:aws:iam::$ACCOUNTID:role/teams/audit/auditor-ci   # audit pipeline\
      username: auditor-ci
`)
	t.Setenv("KUBE_EDITOR", editor)
	t.Setenv("TMPDIR", t.TempDir()) // kubectl edit keeps copies of refused edits there
	res = s.kubectl(t, framework.KubectlOptions{}, "edit", "configmap", "aws-auth", "-n", "kube-system")
	if res.ExitCode != 0 {
		t.Fatalf("edit refused:\n%s", res)
	}
	wantRoles = `# Platform admins sign in through IAM Identity Center.
- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef
  permissionset: Admin   # full access
  username: "admin:{{SessionName}}"
  groups:
    - system:masters

# Auditors read everything (added with kubectl edit).
- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_ReadOnly_fedcba9876543210
  permissionset: ReadOnly
  username: "auditor:{{SessionName}}"
  groups: [auditors]
# CI deploys with its own role (pasted with its IAM path).
- rolearn: arn:aws:iam::111122223333:role/github-deployer
  username: deployer
  groups: [deployers]
- rolearn: arn:aws:iam::111122223333:role/auditor-ci   # audit pipeline
  username: auditor-ci
` + whNodeEntry
	cm = s.get(t)
	assertText(t, "mapRoles after kubectl edit", cm.Data["mapRoles"], wantRoles)
	assertText(t, "mapUsers after kubectl edit", cm.Data["mapUsers"], wantUsers)
	assertContains(t, "kubectl edit stdout", res.Stdout, "configmap/aws-auth edited")
	assertContains(t, "kubectl edit stderr", res.Stderr,
		`Warning: aws-auth: mapRoles[3]`,
		`the IAM path "/teams/audit/" was removed from the role ARN (the authenticator compares ARNs without it). Fix: write role ARNs without their path`)
}

// testRefusals: malformed YAML, duplicate ARNs and an unknown permission set
// are refused with the engine's messages; each refusal is an Event on
// aws-auth (reason = the rule, type Warning, note naming the requester), a
// log line and a metric increment.
func (s *webhookSuite) testRefusals(t *testing.T) {
	head := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n"
	for _, tc := range []struct {
		name, reason, mapRoles string
		manifest               string   // the whole manifest, instead of one with mapRoles
		want                   []string // in kubectl's error output: the entry and the fix
	}{
		{
			name:   "MalformedYAML",
			reason: "MalformedYAML",
			mapRoles: `- permissionset: Admin
  username: admin
   groups: [system:masters]
`,
			want: []string{"mapRoles, line 3 of mapRoles: mapRoles is not valid YAML", "the authenticator would drop every mapping in it", "Fix:"},
		},
		{
			name:   "DuplicateARN",
			reason: "DuplicateARN",
			mapRoles: `- rolearn: arn:aws:iam::111122223333:role/ci/github-deployer
  username: deployer
- rolearn: arn:aws:iam::111122223333:role/GitHub-Deployer
  username: deployer-again
`,
			want: []string{"mapRoles[1] (rolearn arn:aws:iam::111122223333:role/GitHub-Deployer)",
				"mapRoles[0] (rolearn arn:aws:iam::111122223333:role/github-deployer)", "map the same IAM role",
				"Fix: merge the two entries into one"},
		},
		{
			name:   "UnknownPermissionSet",
			reason: "UnknownPermissionSet",
			mapRoles: `- permissionset: Admn   # a typo
  username: admin
  groups: [system:masters]
`,
			want: []string{`mapRoles[0] (permissionset Admn) permissionset, line 1 of mapRoles: the permission set "Admn" has no role in this account`,
				"(permission sets that do: Admin, Admin_ReadOnly, Dev, Ops, ReadOnly)", "Fix: did you mean Admin?"},
		},
		// The document level, through kubectl and the apiserver: what the
		// authenticator reads differently from how it looks.
		{
			name:     "NearMissDataKey",
			reason:   "IgnoredKey",
			manifest: head + "  mapRoles: |\n    - permissionset: Admin\n      username: admin\n  map_users: |\n    - userarn: arn:aws:iam::111122223333:user/alice\n      username: alice\n",
			want:     []string{`the data key "map_users" is not one the authenticator reads`, "did you mean mapUsers?"},
		},
		{
			// As kubectl get -o yaml writes a value holding U+2028: escaped.
			name:     "LineSeparatorInAComment",
			reason:   "LineBreakCharacter",
			manifest: head + "  mapRoles: \"- permissionset: Admin\\n  username: admin # ok\\u2028  groups: [system:masters]\\n\"\n",
			want:     []string{"line 2 of mapRoles", "U+2028 LINE SEPARATOR", "reads as a line break"},
		},
		{
			name:     "CyrillicLookAlikeGroup",
			reason:   "ConfusableCharacter",
			mapRoles: "- permissionset: Admin\n  username: admin\n  groups: [system:m\u0430sters]\n",
			want:     []string{"U+0430 CYRILLIC SMALL LETTER A", "retype it in plain ASCII: system:masters"},
		},
		{
			name:     "ZeroWidthSpaceInARN",
			reason:   "InvisibleCharacter",
			mapRoles: "- rolearn: arn:aws:iam::111122223333:role/ops\u200b\n  username: ops\n",
			want:     []string{"U+200B ZERO WIDTH SPACE", "Fix: retype the value without it"},
		},
		{
			name:     "GroupForGroups",
			reason:   "MisspeltKey",
			mapRoles: "- permissionset: Admin\n  username: admin\n  group: [system:masters]\n",
			want:     []string{`the key "group" is not one the authenticator reads`, `did you mean "groups"?`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.resetAWSAuth(t, whSimpleRoles, "")
			audits := s.auditCount(t, "Rejected", tc.reason)

			manifest := tc.manifest
			if manifest == "" {
				manifest = whManifest("kube-system", "aws-auth", tc.mapRoles, "")
			}
			res := s.kubectl(t, framework.KubectlOptions{Stdin: manifest}, "apply", "-f", "-")
			if res.ExitCode == 0 {
				t.Fatalf("apply was not refused:\n%s", res)
			}
			msg := deniedMessage(t, res)
			assertContains(t, "the denial", msg, append([]string{"aws-auth was not changed"}, tc.want...)...)
			if after := s.get(t); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("aws-auth changed (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
			}
			if got := s.auditCount(t, "Rejected", tc.reason); got != audits+1 {
				t.Errorf("aws_auth_webhook_audit_events_total{action=Rejected,reason=%s} = %v, want %v", tc.reason, got, audits+1)
			}
			e := s.waitEvent(t, before.UID, "Rejected "+tc.reason, func(e eventsv1.Event) bool {
				return e.Reason == tc.reason && e.Action == "Rejected"
			})
			if e.Type != corev1.EventTypeWarning {
				t.Errorf("Event type %s, want Warning", e.Type)
			}
			assertContains(t, "the Event note", e.Note, "UPDATE by e2e-admin")
			s.assertAuditLogged(t, "Rejected", tc.reason, "e2e-admin")
		})
	}
}

// testGuardAsAuthenticator: through kubectl and the apiserver (which puts
// the caller's canonicalArn in userInfo.extra), an IAM user's path is part
// of the match, as in the authenticator: bob, user/team/bob, may not
// rewrite his entry to user/bob, nor change its username. Deleting the
// entry of the node role the webhook is configured with is repaired: the
// write is admitted with the entry back, kubectl shows the warning, and
// the repair is an Event.
func (s *webhookSuite) testGuardAsAuthenticator(t *testing.T) {
	ctx := context.Background()
	// bob may edit ConfigMaps in kube-system, nothing more.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-configmap-editor-bob"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch", "update", "patch"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-configmap-editor-bob"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := s.cp.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	bobARN := "arn:aws:iam::111122223333:user/team/bob"
	mapUsers := "- userarn: " + bobARN + "\n  username: bob\n  groups: [developers]\n"
	before := s.resetAWSAuth(t, whSimpleRoles, mapUsers)
	bob := framework.Identity{User: "bob", Extra: map[string][]string{"canonicalArn": {bobARN}, "arn": {bobARN}}}
	t.Setenv("TMPDIR", t.TempDir()) // kubectl edit keeps copies of refused edits there
	for _, tc := range []struct{ name, sed, want string }{
		{"the path of his user ARN", `s|user/team/bob|user/bob|`, "this edit removes mapUsers[0] (" + bobARN + ")"},
		{"the username of his entry", `s|username: bob|username: robert|`, `changes the username of mapUsers[0] (` + bobARN + `), the mapping you are signed in with`},
	} {
		t.Setenv("KUBE_EDITOR", s.editor(t, tc.sed+"\n"))
		res := s.kubectl(t, framework.KubectlOptions{As: &bob}, "edit", "configmap", "aws-auth", "-n", "kube-system")
		if res.ExitCode == 0 {
			t.Fatalf("%s: bob's edit was admitted:\n%s", tc.name, res)
		}
		assertContains(t, tc.name, deniedMessage(t, res), tc.want, "you would lock yourself out", "Fix:")
		if after := s.get(t); after.ResourceVersion != before.ResourceVersion {
			t.Fatalf("%s: aws-auth changed although the edit was refused", tc.name)
		}
	}

	// The node-role entry removed by an edit is put back, said and audited.
	stored := s.get(t)
	if !strings.Contains(stored.Data["mapRoles"], "role/eks-node-group-1") {
		t.Fatalf("no node entry to remove:\n%s", stored.Data["mapRoles"])
	}
	repairs := s.auditCount(t, "Repaired", "NodeRoleRestored")
	t.Setenv("KUBE_EDITOR", s.editor(t, `/^    - rolearn: arn:aws:iam::111122223333:role\/eks-node-group-1$/,/^        - system:nodes$/d
`))
	res := s.kubectl(t, framework.KubectlOptions{}, "edit", "configmap", "aws-auth", "-n", "kube-system")
	if res.ExitCode != 0 {
		t.Fatalf("removing the node-role entry was refused, want it repaired:\n%s", res)
	}
	assertContains(t, "kubectl edit stderr", res.Stderr, "Warning: aws-auth: this edit removed the node-role entry for arn:aws:iam::111122223333:role/eks-node-group-1; it was added back")
	if got := s.get(t).Data["mapRoles"]; !strings.Contains(got, whNodeEntry) {
		t.Errorf("the node-role entry is not back:\n%s", got)
	}
	if got := s.auditCount(t, "Repaired", "NodeRoleRestored"); got != repairs+1 {
		t.Errorf("aws_auth_webhook_audit_events_total{action=Repaired,reason=NodeRoleRestored} = %v, want %v", got, repairs+1)
	}
	s.waitEvent(t, before.UID, "Repaired NodeRoleRestored", func(e eventsv1.Event) bool {
		return e.Reason == "NodeRoleRestored" && e.Action == "Repaired"
	})
}

// testDeleteRefused: DELETE of aws-auth is refused and audited.
func (s *webhookSuite) testDeleteRefused(t *testing.T) {
	before := s.resetAWSAuth(t, whSimpleRoles, "")
	res := s.kubectl(t, framework.KubectlOptions{}, "delete", "configmap", "aws-auth", "-n", "kube-system", "--wait=false")
	if res.ExitCode == 0 {
		t.Fatalf("delete was not refused:\n%s", res)
	}
	assertContains(t, "the denial", deniedMessage(t, res),
		"deleting aws-auth resets every IAM mapping of the cluster and locks everyone out", "Fix:")
	if after := s.get(t); after.UID != before.UID || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("aws-auth changed: uid %s -> %s, resourceVersion %s -> %s", before.UID, after.UID, before.ResourceVersion, after.ResourceVersion)
	}
	e := s.waitEvent(t, before.UID, "Rejected DeleteRefused", func(e eventsv1.Event) bool {
		return e.Reason == "DeleteRefused" && e.Action == "Rejected"
	})
	if e.Type != corev1.EventTypeWarning {
		t.Errorf("Event type %s, want Warning", e.Type)
	}
	assertContains(t, "the Event note", e.Note, "DELETE by e2e-admin")
}

// testLockout: alice, signed in through the Dev permission set (her
// userInfo.extra.canonicalArn is its role ARN), may not remove that mapping
// with kubectl edit; as a member of the break-glass group she may, and the
// bypass is audited.
func (s *webhookSuite) testLockout(t *testing.T) {
	ctx := context.Background()
	// alice may edit ConfigMaps in kube-system, nothing more.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-configmap-editor"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch", "update", "patch"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-configmap-editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "alice"}},
	}
	if err := s.cp.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := s.cp.Client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	mapRoles := `# Developers (alice signs in through this one).
- permissionset: Dev
  username: "dev:{{SessionName}}"
  groups:
    - developers
# Platform admins.
- permissionset: Admin
  username: "admin:{{SessionName}}"
  groups: [system:masters]
`
	before := s.resetAWSAuth(t, mapRoles, "")
	devARN := whARN(whDevRole)
	alice := framework.Identity{User: "alice", Extra: map[string][]string{
		"canonicalArn": {devARN},
		"arn":          {"arn:aws:sts::111122223333:assumed-role/" + whDevRole + "/alice"},
		"sessionName":  {"alice"},
	}}
	// The editor drops alice's own entry (four lines and its comment).
	t.Setenv("KUBE_EDITOR", s.editor(t, `/^    # Developers/,/^        - developers$/d
`))
	t.Setenv("TMPDIR", t.TempDir()) // kubectl edit keeps copies of refused edits there

	res := s.kubectl(t, framework.KubectlOptions{As: &alice}, "edit", "configmap", "aws-auth", "-n", "kube-system")
	if res.ExitCode == 0 {
		t.Fatalf("alice removed her own mapping:\n%s", res)
	}
	assertContains(t, "the denial", deniedMessage(t, res),
		"this edit removes mapRoles[0] (permissionset Dev)", "the mapping you are signed in with ("+devARN+")",
		"you would lock yourself out", "Fix:")
	if after := s.get(t); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("aws-auth changed although the edit was refused")
	}
	e := s.waitEvent(t, before.UID, "Rejected LockoutSelf", func(e eventsv1.Event) bool {
		return e.Reason == "LockoutSelf" && e.Action == "Rejected"
	})
	if e.Type != corev1.EventTypeWarning {
		t.Errorf("Event type %s, want Warning", e.Type)
	}
	assertContains(t, "the Event note", e.Note, "UPDATE by alice ("+devARN+")")
	s.assertAuditLogged(t, "Rejected", "LockoutSelf", "alice ("+devARN+")")

	// The same edit by alice as a member of the break-glass group.
	alice.Groups = []string{whBreakGlass}
	bypasses := s.auditCount(t, "BreakGlass", "LockoutSelf")
	res = s.kubectl(t, framework.KubectlOptions{As: &alice}, "edit", "configmap", "aws-auth", "-n", "kube-system")
	if res.ExitCode != 0 {
		t.Fatalf("the break-glass edit was refused:\n%s", res)
	}
	assertContains(t, "kubectl edit stderr", res.Stderr,
		`Warning: aws-auth: break-glass: the lockout guard was bypassed through group "platform:break-glass"`)
	wantRoles := `# Platform admins.
- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef
  permissionset: Admin
  username: "admin:{{SessionName}}"
  groups: [system:masters]
` + whNodeEntry
	assertText(t, "mapRoles after the break-glass edit", s.get(t).Data["mapRoles"], wantRoles)
	e = s.waitEvent(t, before.UID, "BreakGlass", func(e eventsv1.Event) bool {
		return e.Action == "BreakGlass"
	})
	if e.Type != corev1.EventTypeWarning || e.Reason != "LockoutSelf" {
		t.Errorf("break-glass Event: type %s reason %s, want Warning LockoutSelf", e.Type, e.Reason)
	}
	assertContains(t, "the Event note", e.Note, "UPDATE by alice ("+devARN+")", `group "platform:break-glass"`)
	if got := s.auditCount(t, "BreakGlass", "LockoutSelf"); got != bypasses+1 {
		t.Errorf("aws_auth_webhook_audit_events_total{action=BreakGlass,reason=LockoutSelf} = %v, want %v", got, bypasses+1)
	}
}

// testResync: the permission set's role gets a new suffix in IAM; within
// an interval or so the resync loop of the running server rewrites aws-auth
// (only that ARN, comments kept) and records a ResyncRewrite Event.
func (s *webhookSuite) testResync(t *testing.T) {
	before := s.resetAWSAuth(t, whOpsRoles("deployer"), "")
	oldARN := whARN(s.opsRole)
	assertText(t, "mapRoles as stored", before.Data["mapRoles"], whOpsRolesResolved(oldARN, "deployer"))

	newARN := whARN(s.rotateOps(t))
	rotated := time.Now()
	var cm *corev1.ConfigMap
	framework.WaitFor(t, 5*whResyncInterval+5*time.Second, func() (bool, error) {
		cm = s.get(t)
		return cm.ResourceVersion != before.ResourceVersion, nil
	})
	took := time.Since(rotated)
	t.Logf("rewritten %v after the rotation (interval %v)", took.Round(time.Millisecond), whResyncInterval)
	// One interval, its 10% jitter and one pass; three intervals leave room
	// for a loaded machine.
	if took > 3*whResyncInterval {
		t.Errorf("the resync loop took %v to pick up the new suffix; the interval is %v", took, whResyncInterval)
	}
	assertText(t, "mapRoles after the resync", cm.Data["mapRoles"], whOpsRolesResolved(newARN, "deployer"))
	e := s.waitEvent(t, before.UID, "ResyncRewrite", func(e eventsv1.Event) bool {
		return e.Action == "ResyncRewrite" && e.Reason == "PermissionSetChanged"
	})
	if e.Type != corev1.EventTypeNormal {
		t.Errorf("ResyncRewrite Event type %s, want Normal", e.Type)
	}
	assertContains(t, "the Event note", e.Note, "RESYNC by aws-auth-webhook resync loop", "permissionset Ops: "+oldARN+" -> "+newARN)
}

// testResyncConcurrentEdit: a user's write based on the object as it was
// before the loop's rewrite is refused with a Conflict and stores both
// changes on retry; then, over several rounds, the permission set is rotated
// while a client-go user keeps updating another entry, and both the loop's
// rewrite and the user's last edit end up stored, with no failed pass.
func (s *webhookSuite) testResyncConcurrentEdit(t *testing.T) {
	ctx := context.Background()
	start := s.resetAWSAuth(t, whOpsRoles("deployer-0"), "")
	deployerRE := regexp.MustCompile(`username: deployer-\S+`)

	// First, deterministically: the user read aws-auth before the rotation
	// and writes after the loop's rewrite. The stale write is refused with
	// a Conflict (it would have put the old ARN back), and the user's retry
	// from a fresh read stores both changes.
	stale := start.DeepCopy()
	newARN := whARN(s.rotateOps(t))
	framework.WaitFor(t, 5*whResyncInterval+5*time.Second, func() (bool, error) {
		return s.get(t).ResourceVersion != start.ResourceVersion, nil
	})
	stale.Data["mapRoles"] = deployerRE.ReplaceAllString(stale.Data["mapRoles"], "username: deployer-stale")
	if err := s.cp.Client.Update(ctx, stale); !apierrors.IsConflict(err) {
		t.Fatalf("a write based on the object before the loop's rewrite: %v, want a Conflict", err)
	}
	fresh := s.get(t)
	fresh.Data["mapRoles"] = deployerRE.ReplaceAllString(fresh.Data["mapRoles"], "username: deployer-stale")
	if err := s.cp.Client.Update(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	assertText(t, "mapRoles after the retried write", s.get(t).Data["mapRoles"], whOpsRolesResolved(newARN, "deployer-stale"))

	// Then, racing: rounds of rotations while the user edits back to back.
	const rounds, editsPerRound = 5, 40
	edits := 0
	for round := 1; round <= rounds; round++ {
		newARN = whARN(s.rotateOps(t))
		// The user edits the deployer entry back to back for about one
		// interval, racing the loop's read-render-update.
		var user string
		for i := 0; i < editsPerRound; i++ {
			edits++
			user = fmt.Sprintf("deployer-%d", edits)
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cm := &corev1.ConfigMap{}
				if err := s.cp.Client.Get(ctx, whAWSAuth, cm); err != nil {
					return err
				}
				cm.Data["mapRoles"] = deployerRE.ReplaceAllString(cm.Data["mapRoles"], "username: "+user)
				return s.cp.Client.Update(ctx, cm)
			})
			if err != nil {
				t.Fatalf("round %d, edit %d: %v", round, i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Both changes are stored: the loop's new ARN (written by the loop,
		// or by the webhook on the user's update) and the user's last edit.
		want := whOpsRolesResolved(newARN, user)
		framework.WaitFor(t, 5*whResyncInterval+5*time.Second, func() (bool, error) {
			return s.get(t).Data["mapRoles"] == want, nil
		})
	}
	m := s.wh.Metrics(t)
	t.Logf("%d rounds, %d user edits; resync conflicts retried so far: %v, rewrites: %v", rounds, edits,
		m.Sum("aws_auth_webhook_resync_conflicts_total", nil), m.Sum("aws_auth_webhook_resync_runs_total", map[string]string{"result": "changed"}))
	if got := m.Sum("aws_auth_webhook_resync_runs_total", map[string]string{"result": "failed"}); got != 0 {
		t.Errorf("resync passes failed: %v", got)
	}
}

// testOtherConfigMaps: ConfigMaps the webhook must not judge — another name
// in kube-system, aws-auth in another namespace — are stored as written,
// whatever they hold, and the webhook never sees them (its request counter
// does not move, while one write to kube-system/aws-auth moves it).
func (s *webhookSuite) testOtherConfigMaps(t *testing.T) {
	ctx := context.Background()
	s.resetAWSAuth(t, whSimpleRoles, "")
	if err := s.cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// What the engine would rewrite (permissionset, $ACCOUNTID, a path,
	// no node role) and reject (a duplicate, an unknown permission set, a
	// YAML error in mapUsers).
	data := map[string]string{
		"mapRoles": `- permissionset: Admin
  username: admin
- rolearn: arn:aws:iam::$ACCOUNTID:role/ci/github-deployer
  username: deployer
- rolearn: arn:aws:iam::111122223333:role/github-deployer
  username: duplicate
- permissionset: NoSuchSet
  username: nobody
`,
		"mapUsers": "- userarn: [unclosed\n",
	}
	requests := s.webhookRequests(t)
	for _, key := range []types.NamespacedName{
		{Namespace: "kube-system", Name: "aws-auth-backup"},
		{Namespace: "kube-system", Name: "aws-auth2"},
		{Namespace: "team-a", Name: "aws-auth"},
	} {
		// kubectl apply (create), client-go update, kubectl delete.
		res := s.kubectl(t, framework.KubectlOptions{Stdin: whManifest(key.Namespace, key.Name, data["mapRoles"], data["mapUsers"])}, "apply", "-f", "-")
		if res.ExitCode != 0 || strings.Contains(res.Stderr, "Warning:") {
			t.Fatalf("%s: apply:\n%s", key, res)
		}
		cm := &corev1.ConfigMap{}
		if err := s.cp.Client.Get(ctx, key, cm); err != nil {
			t.Fatal(err)
		}
		for k, v := range data {
			assertText(t, key.String()+" "+k+" as created", cm.Data[k], v)
		}
		cm.Data["mapRoles"] += "- permissionset: Admin\n  username: admin-again\n"
		if err := s.cp.Client.Update(ctx, cm); err != nil {
			t.Fatalf("%s: update: %v", key, err)
		}
		got := &corev1.ConfigMap{}
		if err := s.cp.Client.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		assertText(t, key.String()+" mapRoles as updated", got.Data["mapRoles"], cm.Data["mapRoles"])
		if res := s.kubectl(t, framework.KubectlOptions{}, "delete", "configmap", key.Name, "-n", key.Namespace); res.ExitCode != 0 {
			t.Fatalf("%s: delete:\n%s", key, res)
		}
	}
	if got := s.webhookRequests(t); got != requests {
		t.Errorf("controller_runtime_webhook_requests_total went from %v to %v: other ConfigMaps were sent to the webhook", requests, got)
	}
	// The control: one write to kube-system/aws-auth is one /mutate and one
	// /validate request.
	cm := s.get(t)
	cm.Data["mapRoles"] += "# a comment\n"
	if err := s.cp.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if got := s.webhookRequests(t); got != requests+2 {
		t.Errorf("one update of kube-system/aws-auth: controller_runtime_webhook_requests_total went from %v to %v, want +2", requests, got)
	}
}

// testDryRun: --dry-run=server gets exactly the answer the real request
// gets (the same refusal; an accepted dry run shows the resolved object),
// and changes and records nothing: no Event, no audit count, no log line,
// the stored object as it was.
func (s *webhookSuite) testDryRun(t *testing.T) {
	before := s.resetAWSAuth(t, whSimpleRoles, "")
	audits := s.auditCount(t, "", "")
	auditLines := strings.Count(s.wh.Logs(), `"msg":"audit: aws-auth`)
	unchanged := func(what string) {
		t.Helper()
		after := s.get(t)
		if after.ResourceVersion != before.ResourceVersion {
			t.Errorf("%s: aws-auth changed (resourceVersion %s -> %s)", what, before.ResourceVersion, after.ResourceVersion)
		}
		if got := s.auditCount(t, "", ""); got != audits {
			t.Errorf("%s: aws_auth_webhook_audit_events_total went from %v to %v", what, audits, got)
		}
		if got := strings.Count(s.wh.Logs(), `"msg":"audit: aws-auth`); got != auditLines {
			t.Errorf("%s: %d audit log lines written", what, got-auditLines)
		}
		if evs := s.events(t, before.UID); len(evs) != 0 {
			t.Errorf("%s: Events recorded: %v", what, describeEvents(evs))
		}
	}

	// Accepted: the output is the object as it would be stored, resolved.
	added := whSimpleRoles + `- permissionset: ReadOnly   # added in a dry run
  username: readonly
`
	res := s.kubectl(t, framework.KubectlOptions{Stdin: whManifest("kube-system", "aws-auth", added, "")},
		"apply", "--dry-run=server", "-o", "jsonpath={.data.mapRoles}", "-f", "-")
	if res.ExitCode != 0 {
		t.Fatalf("dry run refused:\n%s", res)
	}
	assertText(t, "the dry run's mapRoles", res.Stdout, strings.Replace(added, "- permissionset: ReadOnly",
		"- rolearn: "+whARN(whReadOnlyRole)+"\n  permissionset: ReadOnly", 1)+whNodeEntry)
	unchanged("accepted dry run")

	// Refused: the same message as the real request.
	bad := whManifest("kube-system", "aws-auth", whSimpleRoles+"- permissionset: NoSuchSet\n  username: nobody\n", "")
	dry := s.kubectl(t, framework.KubectlOptions{Stdin: bad}, "apply", "--dry-run=server", "-f", "-")
	if dry.ExitCode == 0 {
		t.Fatalf("dry run of an unknown permission set admitted:\n%s", dry)
	}
	unchanged("refused dry run")
	dryDelete := s.kubectl(t, framework.KubectlOptions{}, "delete", "configmap", "aws-auth", "-n", "kube-system", "--dry-run=server")
	if dryDelete.ExitCode == 0 {
		t.Fatalf("dry-run delete admitted:\n%s", dryDelete)
	}
	unchanged("refused dry-run delete")

	live := s.kubectl(t, framework.KubectlOptions{Stdin: bad}, "apply", "-f", "-")
	if live.ExitCode == 0 {
		t.Fatalf("unknown permission set admitted:\n%s", live)
	}
	if d, r := deniedMessage(t, dry), deniedMessage(t, live); d != r {
		t.Errorf("the dry run and the real request got different answers:\ndry run: %s\nreal:    %s", d, r)
	}
	realDelete := s.kubectl(t, framework.KubectlOptions{}, "delete", "configmap", "aws-auth", "-n", "kube-system", "--wait=false")
	if realDelete.ExitCode == 0 {
		t.Fatalf("delete admitted:\n%s", realDelete)
	}
	if d, r := deniedMessage(t, dryDelete), deniedMessage(t, realDelete); d != r {
		t.Errorf("the dry-run delete and the real one got different answers:\ndry run: %s\nreal:    %s", d, r)
	}
	// The real requests are recorded: two audit counts, and one Event each
	// (not a series of two: the dry runs added none).
	if got := s.auditCount(t, "", ""); got != audits+2 {
		t.Errorf("aws_auth_webhook_audit_events_total went from %v to %v, want +2", audits, got)
	}
	for _, reason := range []string{"UnknownPermissionSet", "DeleteRefused"} {
		e := s.waitEvent(t, before.UID, reason, func(e eventsv1.Event) bool { return e.Reason == reason })
		if e.Series != nil && e.Series.Count > 1 {
			t.Errorf("the %s Event is a series of %d: the dry run was recorded", reason, e.Series.Count)
		}
	}
	var reasons []string
	for _, e := range s.events(t, before.UID) {
		reasons = append(reasons, e.Reason)
	}
	if len(reasons) != 2 {
		t.Errorf("Events regarding aws-auth: %v, want one UnknownPermissionSet and one DeleteRefused", reasons)
	}
}

// --- helpers --------------------------------------------------------------

// whSimpleRoles is a valid mapRoles that needs no rewriting except the
// node role entry.
const whSimpleRoles = `# Platform admins.
- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef
  permissionset: Admin
  username: "admin:{{SessionName}}"
  groups: [system:masters]
`

// whOpsRoles is a mapRoles with the Ops permission set (which the resync
// subtests rotate) and a deployer entry (which they edit).
func whOpsRoles(user string) string {
	return `# On-call operators: the suffix of their role changes when the
# permission set is re-provisioned; the webhook keeps it current.
- permissionset: Ops   # IAM Identity Center
  username: "ops:{{SessionName}}"
  groups: [ops]
- rolearn: arn:aws:iam::111122223333:role/github-deployer
  username: ` + user + `
  groups: [deployers]
`
}

// whOpsRolesResolved is whOpsRoles as stored, with the Ops role opsARN.
func whOpsRolesResolved(opsARN, user string) string {
	return strings.Replace(whOpsRoles(user), "- permissionset: Ops", "- rolearn: "+opsARN+"\n  permissionset: Ops", 1) + whNodeEntry
}

// whManifest is a ConfigMap manifest with mapRoles and mapUsers (when not
// empty) as literal block scalars.
func whManifest(ns, name, mapRoles, mapUsers string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n", name, ns)
	for _, kv := range [][2]string{{"mapRoles", mapRoles}, {"mapUsers", mapUsers}} {
		if kv[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "  %s: |\n", kv[0])
		for _, line := range strings.SplitAfter(kv[1], "\n") {
			if line == "" {
				continue
			}
			if line == "\n" {
				b.WriteString(line)
				continue
			}
			b.WriteString("    " + line)
		}
	}
	return b.String()
}

func (s *webhookSuite) kubectl(t *testing.T, opts framework.KubectlOptions, args ...string) framework.KubectlResult {
	t.Helper()
	return s.cp.KubectlWith(t, opts, args...)
}

// editor writes a KUBE_EDITOR script that runs the sed script on the file
// kubectl hands it.
func (s *webhookSuite) editor(t *testing.T, sedScript string) string {
	t.Helper()
	dir := t.TempDir()
	sedFile := filepath.Join(dir, "edit.sed")
	if err := os.WriteFile(sedFile, []byte(sedScript), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "editor.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sed -i -f '"+sedFile+"' \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

func (s *webhookSuite) get(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := s.cp.Client.Get(context.Background(), whAWSAuth, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

// deleteAWSAuth deletes kube-system/aws-auth as a break-glass admin (the
// webhook refuses it to everyone else) and waits until it is gone.
func (s *webhookSuite) deleteAWSAuth(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cfg := s.cp.ConfigAs(framework.Identity{User: "e2e-reset", Groups: []string{"system:masters", whBreakGlass}})
	cfg.WarningHandlerWithContext = rest.NoWarnings{} // the break-glass warning is expected here
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: whAWSAuth.Namespace, Name: whAWSAuth.Name}})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting aws-auth (break-glass): %v", err)
	}
	framework.WaitFor(t, 10*time.Second, func() (bool, error) {
		return apierrors.IsNotFound(s.cp.Client.Get(ctx, whAWSAuth, &corev1.ConfigMap{})), nil
	})
}

// resetAWSAuth replaces kube-system/aws-auth with a new object (a new UID,
// so the subtest's Events are its own), written through the webhook, and
// returns it as stored.
func (s *webhookSuite) resetAWSAuth(t *testing.T, mapRoles, mapUsers string) *corev1.ConfigMap {
	t.Helper()
	s.deleteAWSAuth(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: whAWSAuth.Namespace, Name: whAWSAuth.Name},
		Data: map[string]string{"mapRoles": mapRoles}}
	if mapUsers != "" {
		cm.Data["mapUsers"] = mapUsers
	}
	if err := s.cp.Client.Create(context.Background(), cm); err != nil {
		t.Fatalf("creating aws-auth: %v", err)
	}
	return cm
}

// rotateOps gives the Ops permission set's role a new suffix in IAM, as
// Identity Center does when the permission set is re-provisioned, and
// returns the new role name.
func (s *webhookSuite) rotateOps(t *testing.T) string {
	t.Helper()
	name, err := s.emu.RotatePermissionSet("Ops")
	if err != nil {
		t.Fatal(err)
	}
	s.opsRole = name
	return name
}

// auditCount is aws_auth_webhook_audit_events_total summed over the labels
// given ("" matches every value).
func (s *webhookSuite) auditCount(t *testing.T, action, reason string) float64 {
	t.Helper()
	labels := map[string]string{}
	if action != "" {
		labels["action"] = action
	}
	if reason != "" {
		labels["reason"] = reason
	}
	return s.wh.Metrics(t).Sum("aws_auth_webhook_audit_events_total", labels)
}

// webhookRequests is controller_runtime_webhook_requests_total over both
// paths and every code.
func (s *webhookSuite) webhookRequests(t *testing.T) float64 {
	t.Helper()
	return s.wh.Metrics(t).Sum("controller_runtime_webhook_requests_total", nil)
}

// assertAuditLogged checks the server logged one structured audit line
// with the action, reason and requester.
func (s *webhookSuite) assertAuditLogged(t *testing.T, action, reason, requester string) {
	t.Helper()
	for _, line := range strings.Split(s.wh.Logs(), "\n") {
		if strings.Contains(line, `"msg":"audit: aws-auth `+action+`"`) &&
			strings.Contains(line, `"reason":"`+reason+`"`) && strings.Contains(line, `"requester":"`+requester) {
			return
		}
	}
	t.Errorf("no audit log line with action %s, reason %s, requester %s", action, reason, requester)
}

// events lists the Events regarding the aws-auth object with uid.
func (s *webhookSuite) events(t *testing.T, uid types.UID) []eventsv1.Event {
	t.Helper()
	var out []eventsv1.Event
	for _, e := range s.cp.Events(t, whAWSAuth.Namespace, whAWSAuth.Name) {
		if e.Regarding.UID == uid {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event regarding aws-auth with uid that matches.
func (s *webhookSuite) waitEvent(t *testing.T, uid types.UID, what string, match func(eventsv1.Event) bool) eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	var seen []eventsv1.Event
	deadline := time.Now().Add(15 * time.Second)
	for found == nil && time.Now().Before(deadline) {
		seen = s.events(t, uid)
		for i := range seen {
			if match(seen[i]) {
				found = &seen[i]
				break
			}
		}
		if found == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if found == nil {
		t.Fatalf("no Event %s regarding aws-auth (uid %s) within 15s; seen: %v", what, uid, describeEvents(seen))
	}
	if found.ReportingController != "aws-auth-webhook" {
		t.Errorf("Event %s reported by %q, want aws-auth-webhook", what, found.ReportingController)
	}
	return *found
}

func describeEvents(evs []eventsv1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s/%s: %s", e.Type, e.Action, e.Reason, e.Note))
	}
	return out
}

var deniedRE = regexp.MustCompile(`admission webhook "(?:` + regexp.QuoteMeta(framework.MutatingWebhookName) + `|` +
	regexp.QuoteMeta(framework.ValidatingWebhookName) + `)" denied the request: [\s\S]*`)

// deniedMessage is the webhook's message in kubectl's error output (kubectl
// prefixes it with what it was doing). What the engine cannot render is
// refused by the mutating webhook already; the lockout guard is the
// validating one.
func deniedMessage(t *testing.T, res framework.KubectlResult) string {
	t.Helper()
	m := deniedRE.FindStringSubmatch(res.Stderr)
	if m == nil {
		t.Fatalf("kubectl's error is not a denial by aws-auth-webhook:\n%s", res)
	}
	return strings.TrimSpace(m[0])
}

func assertText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s differs\n--- got:\n%s\n--- want:\n%s\n--- got (quoted): %q", what, got, want, got)
	}
}

func assertContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}
