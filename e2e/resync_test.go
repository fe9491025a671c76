//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/resync"
)

const (
	account  = "111122223333"
	nodeRole = "arn:aws:iam::" + account + ":role/eks-node-group-1"
)

var awsAuthKey = types.NamespacedName{Namespace: metav1.NamespaceSystem, Name: "aws-auth"}

func roleARN(name string) string { return "arn:aws:iam::" + account + ":role/" + name }

// doc is the aws-auth the tests write: comments, blank lines, two quoting
// styles, a flow list, and the fields the resync loop must leave alone.
type doc struct {
	admin, dev string // rolearn of the Admin and Dev entries
	devUser    string
	node       bool // include the node role entry
}

func (d doc) mapRoles() string {
	s := `# Managed by the platform team. permissionset entries are kept current
# by aws-auth-webhook; edit the rest by hand.
- permissionset: Admin
  rolearn: ` + d.admin + `   # resolved by the webhook
  username: "admin:{{SessionName}}"
  groups:
    - system:masters

# developers
- permissionset: Dev
  rolearn: '` + d.dev + `'
  username: ` + d.devUser + `
  groups: [developers]
`
	if d.node {
		s += `- rolearn: ` + nodeRole + `
  username: system:node:{{EC2PrivateDNSName}}
  groups: [system:bootstrappers, system:nodes]
`
	}
	return s
}

const mapUsers = `- userarn: arn:aws:iam::111122223333:user/alice   # break-glass
  username: alice
  groups: [system:masters]
`

// harness is what every subtest shares: one control plane, one emulator,
// one AWS resolver over the real SDK, one auditor on a real Event recorder.
type harness struct {
	cp    *framework.ControlPlane
	emu   *awsemu.Server
	res   *awsidentity.Resolver
	aud   *audit.Auditor
	roles map[string]string // permission set -> current role name in the emulator
}

func TestResync(t *testing.T) {
	start := time.Now()
	cp := framework.StartControlPlane(t)
	admin := awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1")
	dev := awsemu.SSORole("Dev", "1111111111111111", "eu-west-1")
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: account, Region: "eu-west-1", Roles: []awsemu.Role{
		admin, dev, {Name: "eks-node-group-1"},
	}})
	awsCfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		cp:  cp,
		emu: emu,
		// Few, quick retries and no client-side rate limit: an injected
		// outage fails fast and thirty passes in a row are not throttled.
		res: awsidentity.New(awsCfg, awsidentity.Options{RetryMaxAttempts: 2, RetryMaxBackoff: 20 * time.Millisecond,
			IAMRequestsPerSecond: 1000, IAMBurst: 1000}),
		aud:   audit.New(cp.EventRecorder(t, "aws-auth-webhook"), testr.New(t), prometheus.NewRegistry()),
		roles: map[string]string{"Admin": admin.Name, "Dev": dev.Name},
	}
	t.Logf("setup %v", time.Since(start).Round(time.Millisecond))

	t.Run("RotationIsRewrittenAndLoopPicksUpTheNext", h.testRotation)
	t.Run("UnresolvedKeepsLastARN", h.testUnresolved)
	t.Run("IAMDownWritesNothingAndRecovers", h.testIAMDown)
	t.Run("MissingNodeRoleIsAdded", h.testNodeRole)
	t.Run("ConcurrentEditIsNeverLost", h.testConcurrentEdit)
}

// current is the doc matching the emulator's current roles.
func (h *harness) current(devUser string) doc {
	return doc{admin: roleARN(h.roles["Admin"]), dev: roleARN(h.roles["Dev"]), devUser: devUser, node: true}
}

func (h *harness) rotate(t *testing.T, ps string) (oldARN, newARN string) {
	t.Helper()
	name, err := h.emu.RotatePermissionSet(ps)
	if err != nil {
		t.Fatal(err)
	}
	oldARN, newARN = roleARN(h.roles[ps]), roleARN(name)
	h.roles[ps] = name
	return oldARN, newARN
}

// fresh replaces kube-system/aws-auth with a new object (a new UID, so the
// subtest's Events are its own).
func (h *harness) fresh(t *testing.T, mapRoles string) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	if err := h.cp.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: awsAuthKey.Namespace, Name: awsAuthKey.Name}}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	framework.WaitFor(t, 10*time.Second, func() (bool, error) {
		err := h.cp.Client.Get(ctx, awsAuthKey, &corev1.ConfigMap{})
		return apierrors.IsNotFound(err), nil
	})
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: awsAuthKey.Namespace, Name: awsAuthKey.Name},
		Data:       map[string]string{"mapRoles": mapRoles, "mapUsers": mapUsers},
	}
	if err := h.cp.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func (h *harness) get(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := h.cp.Client.Get(context.Background(), awsAuthKey, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func (h *harness) loop(t *testing.T, res resync.Resolver, opts resync.Options) *resync.Loop {
	if res == nil {
		res = h.res
	}
	if opts.NodeRoleARNs == nil {
		opts.NodeRoleARNs = []string{nodeRole}
	}
	opts.Registerer = prometheus.NewRegistry()
	return resync.New(h.cp.Client, h.cp.Client, res, h.aud, testr.New(t), opts)
}

// waitEvent waits for an Event regarding the object with uid that matches.
func (h *harness) waitEvent(t *testing.T, uid types.UID, what string, match func(eventsv1.Event) bool) eventsv1.Event {
	t.Helper()
	var seen []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		seen = seen[:0]
		for _, e := range h.cp.Events(t, awsAuthKey.Namespace, awsAuthKey.Name) {
			if e.Regarding.UID != uid {
				continue
			}
			if match(e) {
				return e
			}
			seen = append(seen, fmt.Sprintf("%s %s %s: %s", e.Type, e.Reason, e.Action, e.Note))
		}
	}
	t.Fatalf("no Event %s regarding uid %s within 10s; seen %q", what, uid, seen)
	return eventsv1.Event{}
}

func isEvent(typ string, action audit.Action, reason string, noteHas ...string) func(eventsv1.Event) bool {
	return func(e eventsv1.Event) bool {
		if e.Type != typ || e.Action != string(action) || e.Reason != reason || e.ReportingController != "aws-auth-webhook" {
			return false
		}
		for _, s := range noteHas {
			if !strings.Contains(e.Note, s) {
				return false
			}
		}
		return true
	}
}

func (h *harness) testRotation(t *testing.T) {
	ctx := context.Background()
	d := h.current("dev")
	cm := h.fresh(t, d.mapRoles())
	l := h.loop(t, nil, resync.Options{Interval: 300 * time.Millisecond})

	// Current already: no write.
	out, err := l.SyncOnce(ctx)
	if err != nil || out.Result != resync.ResultOK || out.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("first pass: %+v %v (object at %s)", out, err, cm.ResourceVersion)
	}

	// Identity Center re-provisions Admin: a new suffix.
	oldARN, newARN := h.rotate(t, "Admin")
	start := time.Now()
	out, err = l.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SyncOnce rewrote in %v", time.Since(start).Round(time.Millisecond))
	entry := "permissionset Admin: " + oldARN + " -> " + newARN
	if out.Result != resync.ResultChanged || !slices.Equal(out.Changed, []string{"mapRoles"}) || !slices.Equal(out.Entries, []string{entry}) {
		t.Errorf("outcome %+v", out)
	}
	got := h.get(t)
	d.admin = newARN
	if got.Data["mapRoles"] != d.mapRoles() {
		t.Errorf("mapRoles:\n%s\nwant (only the Admin rolearn changed):\n%s", got.Data["mapRoles"], d.mapRoles())
	}
	if got.Data["mapUsers"] != mapUsers {
		t.Errorf("mapUsers changed:\n%s", got.Data["mapUsers"])
	}
	if got.ResourceVersion != out.ResourceVersion {
		t.Errorf("object at %s, outcome says %s", got.ResourceVersion, out.ResourceVersion)
	}

	ev := h.waitEvent(t, cm.UID, "Normal ResyncRewrite PermissionSetChanged",
		isEvent(corev1.EventTypeNormal, audit.ActionResyncRewrite, resync.ReasonPermissionSetChanged, entry, "RESYNC by "+resync.Requester))
	t.Logf("Event %s/%s: %s", ev.Namespace, ev.Name, ev.Note)
	// The same Event through core/v1 and through kubectl.
	core, err := h.cp.Clientset.CoreV1().Events(awsAuthKey.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.uid=" + string(cm.UID) + ",reason=" + resync.ReasonPermissionSetChanged})
	if err != nil || len(core.Items) != 1 || core.Items[0].InvolvedObject.Kind != "ConfigMap" {
		t.Errorf("core/v1 view: %v %+v", err, core)
	}
	kc := h.cp.Kubectl(t, "events", "-n", awsAuthKey.Namespace, "--for", "configmap/aws-auth")
	if kc.ExitCode != 0 || !strings.Contains(kc.Stdout, resync.ReasonPermissionSetChanged) {
		t.Errorf("kubectl events does not show it: %s", kc)
	}
	kc = h.cp.Kubectl(t, "describe", "configmap", "-n", awsAuthKey.Namespace, "aws-auth")
	if kc.ExitCode != 0 || !strings.Contains(kc.Stdout, resync.ReasonPermissionSetChanged) {
		t.Errorf("kubectl describe does not show it: %s", kc)
	}

	// The loop: a second rotation is picked up within a few intervals.
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Start(lctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Start did not return after its context ended")
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the immediate first pass go by
	_, newARN2 := h.rotate(t, "Admin")
	start = time.Now()
	framework.WaitFor(t, 10*time.Second, func() (bool, error) {
		return strings.Contains(h.get(t).Data["mapRoles"], newARN2), nil
	})
	took := time.Since(start)
	t.Logf("the loop (interval 300ms, jitter 0.1) picked up the second rotation after %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the loop took %v to pick up a rotation with a 300ms interval", took)
	}
	d.admin = newARN2
	if got := h.get(t).Data["mapRoles"]; got != d.mapRoles() {
		t.Errorf("mapRoles after the loop:\n%s\nwant:\n%s", got, d.mapRoles())
	}
	// client-go's events API folds repeats of one (object, type, reason,
	// action) into a series: the first Event's count goes up.
	h.waitEvent(t, cm.UID, "ResyncRewrite series of 2", func(e eventsv1.Event) bool {
		return isEvent(corev1.EventTypeNormal, audit.ActionResyncRewrite, resync.ReasonPermissionSetChanged)(e) &&
			e.Series != nil && e.Series.Count >= 2
	})
}

func (h *harness) testUnresolved(t *testing.T) {
	ctx := context.Background()
	d := h.current("dev")
	cm := h.fresh(t, d.mapRoles())
	l := h.loop(t, nil, resync.Options{})

	// Dev is unassigned from the account: its role is gone.
	devRole := awsemu.SSORole("Dev", strings.TrimPrefix(h.roles["Dev"], "AWSReservedSSO_Dev_"), "eu-west-1")
	h.emu.DeleteRole(devRole.Name)
	defer h.emu.PutRole(devRole)

	out, err := l.SyncOnce(ctx)
	if err != nil || out.Result != resync.ResultOK || len(out.Unresolved) != 1 || !strings.Contains(out.Unresolved[0], "permissionset Dev") {
		t.Fatalf("outcome %+v %v", out, err)
	}
	if got := h.get(t); got.ResourceVersion != cm.ResourceVersion {
		t.Errorf("nothing to write, but the object moved to %s", got.ResourceVersion)
	}
	h.waitEvent(t, cm.UID, "Warning ResyncUnresolved PermissionSetUnresolved",
		isEvent(corev1.EventTypeWarning, audit.ActionResyncUnresolved, resync.ReasonPermissionSetUnresolved,
			"permissionset Dev no longer resolves", d.dev))

	// Admin rotates meanwhile: Admin is rewritten, Dev keeps its last ARN.
	_, newARN := h.rotate(t, "Admin")
	out, err = l.SyncOnce(ctx)
	if err != nil || out.Result != resync.ResultChanged || len(out.Unresolved) != 1 {
		t.Fatalf("outcome %+v %v", out, err)
	}
	d.admin = newARN
	if got := h.get(t).Data["mapRoles"]; got != d.mapRoles() {
		t.Errorf("mapRoles:\n%s\nwant:\n%s", got, d.mapRoles())
	}
}

func (h *harness) testIAMDown(t *testing.T) {
	ctx := context.Background()
	d := h.current("dev")
	cm := h.fresh(t, d.mapRoles())
	l := h.loop(t, nil, resync.Options{})
	_, newARN := h.rotate(t, "Admin") // a write is due

	calls := h.emu.Calls("iam:ListRoles")
	t.Cleanup(h.emu.ClearFaults)
	h.emu.InjectFault("iam:ListRoles", awsemu.Fault{Code: "ServiceUnavailable", HTTPStatus: 503})
	out, err := l.SyncOnce(ctx)
	if err == nil || out.Result != resync.ResultFailed {
		t.Fatalf("IAM is down, yet %+v %v", out, err)
	}
	if n := h.emu.Calls("iam:ListRoles") - calls; n < 1 {
		t.Errorf("ListRoles was not called (%d)", n)
	}
	if got := h.get(t); got.ResourceVersion != cm.ResourceVersion || got.Data["mapRoles"] != d.mapRoles() {
		t.Errorf("a failed pass wrote the object (resourceVersion %s -> %s)", cm.ResourceVersion, got.ResourceVersion)
	}
	h.waitEvent(t, cm.UID, "Warning ResyncFailed IAMUnavailable",
		isEvent(corev1.EventTypeWarning, audit.ActionResyncFailed, resync.ReasonIAMUnavailable, "iam:ListRoles", "ServiceUnavailable"))

	h.emu.ClearFaults()
	out, err = l.SyncOnce(ctx)
	if err != nil || out.Result != resync.ResultChanged {
		t.Fatalf("after recovery: %+v %v", out, err)
	}
	d.admin = newARN
	if got := h.get(t).Data["mapRoles"]; got != d.mapRoles() {
		t.Errorf("mapRoles:\n%s\nwant:\n%s", got, d.mapRoles())
	}
}

func (h *harness) testNodeRole(t *testing.T) {
	ctx := context.Background()
	d := h.current("dev")
	d.node = false
	cm := h.fresh(t, d.mapRoles())
	l := h.loop(t, nil, resync.Options{})

	out, err := l.SyncOnce(ctx)
	if err != nil || out.Result != resync.ResultChanged || !slices.Equal(out.Entries, []string{"node role " + nodeRole + " added"}) {
		t.Fatalf("outcome %+v %v", out, err)
	}
	got := h.get(t).Data["mapRoles"]
	if !strings.HasPrefix(got, d.mapRoles()) {
		t.Errorf("the existing text changed:\n%s", got)
	}
	roles := awsauth.Lint(map[string]string{"mapRoles": got}).Roles
	last := roles[len(roles)-1]
	if len(roles) != 3 || last.ARN != nodeRole || last.Username != awsauth.NodeUsername ||
		!slices.Equal(last.Groups, []string{"system:bootstrappers", "system:nodes"}) {
		t.Errorf("node entry %+v in:\n%s", last, got)
	}
	h.waitEvent(t, cm.UID, "Normal ResyncRewrite NodeRoleAdded",
		isEvent(corev1.EventTypeNormal, audit.ActionResyncRewrite, resync.ReasonNodeRoleAdded, "node role "+nodeRole+" added"))

	// Idempotent: the next pass has nothing to do.
	if out, err := l.SyncOnce(ctx); err != nil || out.Result != resync.ResultOK {
		t.Errorf("second pass %+v %v", out, err)
	}
}

// racingResolver makes another writer's update happen while the loop
// renders: after the loop has read aws-auth and before it writes.
type racingResolver struct {
	resync.Resolver
	mu   sync.Mutex
	next func() error
	err  error
}

func (r *racingResolver) arm(f func() error) {
	r.mu.Lock()
	r.next = f
	r.mu.Unlock()
}

func (r *racingResolver) PermissionSetRoles(ctx context.Context, names []string) (awsauth.PermissionSetLookup, error) {
	r.mu.Lock()
	f := r.next
	r.next = nil
	r.mu.Unlock()
	if f != nil {
		if err := f(); err != nil {
			r.mu.Lock()
			r.err = errors.Join(r.err, err)
			r.mu.Unlock()
		}
	}
	return r.Resolver.PermissionSetRoles(ctx, names)
}

func (h *harness) testConcurrentEdit(t *testing.T) {
	const rounds = 30
	ctx := context.Background()
	d := h.current("dev")
	h.fresh(t, d.mapRoles())
	racing := &racingResolver{Resolver: h.res}
	l := h.loop(t, racing, resync.Options{})

	start := time.Now()
	conflicts := 0
	for i := 1; i <= rounds; i++ {
		_, newARN := h.rotate(t, "Admin")
		prevUser, user := d.devUser, fmt.Sprintf("dev-round-%d", i)
		// The other writer edits a different entry of the same key.
		racing.arm(func() error {
			cm := &corev1.ConfigMap{}
			if err := h.cp.Client.Get(ctx, awsAuthKey, cm); err != nil {
				return err
			}
			text := cm.Data["mapRoles"]
			cm.Data["mapRoles"] = strings.Replace(text, "username: "+prevUser+"\n", "username: "+user+"\n", 1)
			if cm.Data["mapRoles"] == text {
				return fmt.Errorf("round %d: username %s not found", i, prevUser)
			}
			return h.cp.Client.Update(ctx, cm)
		})
		out, err := l.SyncOnce(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if racing.err != nil {
			t.Fatalf("round %d: the competing writer failed: %v", i, racing.err)
		}
		if out.Result != resync.ResultChanged || out.Conflicts < 1 {
			t.Errorf("round %d: outcome %+v, want a rewrite after a retried conflict", i, out)
		}
		conflicts += out.Conflicts
		d.admin, d.devUser = newARN, user
		if got := h.get(t).Data["mapRoles"]; got != d.mapRoles() {
			t.Fatalf("round %d: a change was lost:\n%s\nwant both the competing username and the new ARN:\n%s", i, got, d.mapRoles())
		}
	}
	t.Logf("%d rounds, %d conflicts retried, %v", rounds, conflicts, time.Since(start).Round(time.Millisecond))
	if conflicts != rounds {
		t.Errorf("%d conflicts in %d rounds, want exactly one each", conflicts, rounds)
	}
}
