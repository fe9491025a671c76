package resync

import (
	goruntime "runtime"

	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

const (
	adminV1  = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef"
	adminV2  = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_fedcba9876543210"
	devV1    = "arn:aws:iam::111122223333:role/AWSReservedSSO_Dev_1111111111111111"
	nodeRole = "arn:aws:iam::111122223333:role/eks-node"
)

// fakeResolver stands in for AWS: the AWS side has its own tests, and the
// e2e runs the loop against the real SDK and the emulator.
type fakeResolver struct {
	mu         sync.Mutex
	roles      map[string]string
	refreshErr error
	lookupErr  error
	refreshes  int
	// onLookup, when set, runs once on the next PermissionSetRoles call.
	onLookup func()
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{roles: map[string]string{"Admin": adminV1, "Dev": devV1}}
}

func (f *fakeResolver) set(ps, arn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if arn == "" {
		delete(f.roles, ps)
	} else {
		f.roles[ps] = arn
	}
}

func (f *fakeResolver) Account(context.Context) (awsauth.Account, error) {
	return awsauth.Account{Partition: "aws", ID: "111122223333"}, nil
}

func (f *fakeResolver) PermissionSetRoles(_ context.Context, names []string) (awsauth.PermissionSetLookup, error) {
	f.mu.Lock()
	hook := f.onLookup
	f.onLookup = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := awsauth.PermissionSetLookup{ARNs: map[string]string{}}
	if f.lookupErr != nil {
		return out, f.lookupErr
	}
	for _, n := range names {
		if a, ok := f.roles[n]; ok {
			out.ARNs[n] = a
		}
	}
	for n := range f.roles {
		out.Existing = append(out.Existing, n)
	}
	sort.Strings(out.Existing)
	return out, nil
}

func (f *fakeResolver) Refresh(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	return f.refreshErr
}

// recorder records Events as strings "Type Reason Action: note".
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s %s %s: %s", eventtype, reason, action, fmt.Sprintf(note, args...)))
}

func (r *recorder) AnnotatedEventf(regarding, related runtime.Object, _ map[string]string, eventtype, reason, action, note string, args ...any) {
	r.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

const mapRoles = `# platform team: edit through the webhook
- permissionset: Admin
  rolearn: ` + adminV1 + ` # resolved
  username: admin:{{SessionName}}
  groups: [system:masters]

- rolearn: ` + nodeRole + `
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- permissionset: Dev
  rolearn: "` + devV1 + `"
  username: dev
  groups: ["dev"]   # quoted on purpose
`

const mapUsers = `- userarn: arn:aws:iam::111122223333:user/alice
  username: alice
  groups: [system:masters]
`

type env struct {
	t   *testing.T
	c   client.WithWatch
	res *fakeResolver
	rec *recorder
	reg *prometheus.Registry
	l   *Loop
}

var key = types.NamespacedName{Namespace: "kube-system", Name: "aws-auth"}

func newEnv(t *testing.T, cm *corev1.ConfigMap, funcs *interceptor.Funcs, opts Options) *env {
	t.Helper()
	b := fake.NewClientBuilder()
	if cm != nil {
		b = b.WithObjects(cm)
	}
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	e := &env{t: t, c: b.Build(), res: newFakeResolver(), rec: &recorder{}, reg: prometheus.NewRegistry()}
	opts.Registerer = e.reg
	log := testr.New(t)
	e.l = New(e.c, e.c, e.res, audit.New(e.rec, log, e.reg), log, opts)
	return e
}

func awsAuth(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth", UID: "uid-1"},
		Data:       data,
		BinaryData: map[string][]byte{"blob": []byte("x")},
	}
}

func (e *env) get() *corev1.ConfigMap {
	e.t.Helper()
	cm := &corev1.ConfigMap{}
	if err := e.c.Get(context.Background(), key, cm); err != nil {
		e.t.Fatal(err)
	}
	return cm
}

func (e *env) metric(name, label string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestRewritesChangedPermissionSet(t *testing.T) {
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles, "mapUsers": mapUsers}), nil,
		Options{NodeRoleARNs: []string{nodeRole}})
	before := e.get()

	// Nothing changed in IAM: nothing is written, nothing is audited.
	out, err := e.l.SyncOnce(context.Background())
	if err != nil || out.Result != ResultOK || len(out.Changed) != 0 {
		t.Fatalf("unchanged: %+v, %v", out, err)
	}
	if got := e.get(); got.ResourceVersion != before.ResourceVersion {
		t.Errorf("nothing to change, but resourceVersion moved %s -> %s", before.ResourceVersion, got.ResourceVersion)
	}
	if ev := e.rec.take(); len(ev) != 0 {
		t.Errorf("events %v, want none", ev)
	}

	e.res.set("Admin", adminV2)
	out, err = e.l.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != ResultChanged || !slices.Equal(out.Changed, []string{"mapRoles"}) || out.Conflicts != 0 {
		t.Errorf("outcome %+v", out)
	}
	wantEntry := "permissionset Admin: " + adminV1 + " -> " + adminV2
	if !slices.Equal(out.Entries, []string{wantEntry}) {
		t.Errorf("entries %q, want %q", out.Entries, wantEntry)
	}
	after := e.get()
	if want := strings.Replace(mapRoles, adminV1, adminV2, 1); after.Data["mapRoles"] != want {
		t.Errorf("mapRoles:\n%s\nwant (only the ARN changed):\n%s", after.Data["mapRoles"], want)
	}
	if after.Data["mapUsers"] != mapUsers || string(after.BinaryData["blob"]) != "x" {
		t.Errorf("other keys changed: %v %v", after.Data["mapUsers"], after.BinaryData)
	}
	if out.ResourceVersion != after.ResourceVersion || out.UID != "uid-1" {
		t.Errorf("outcome rv/uid %s/%s, object %s", out.ResourceVersion, out.UID, after.ResourceVersion)
	}
	ev := e.rec.take()
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal PermissionSetChanged ResyncRewrite: RESYNC by "+Requester+": the resync loop rewrote mapRoles") ||
		!strings.Contains(ev[0], "\n- "+wantEntry) {
		t.Errorf("events %q", ev)
	}
	if e.metric("aws_auth_webhook_resync_runs_total", "changed") != 1 || e.metric("aws_auth_webhook_resync_runs_total", "ok") != 1 ||
		e.metric("aws_auth_webhook_resync_runs_total", "failed") != 0 {
		t.Errorf("runs metric: ok %v changed %v failed %v", e.metric("aws_auth_webhook_resync_runs_total", "ok"),
			e.metric("aws_auth_webhook_resync_runs_total", "changed"), e.metric("aws_auth_webhook_resync_runs_total", "failed"))
	}
	if ts := e.metric("aws_auth_webhook_resync_last_success_timestamp_seconds", ""); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success gauge %v", ts)
	}
	if e.metric("aws_auth_webhook_audit_events_total", "ResyncRewrite") != 1 {
		t.Errorf("audit metric not counted")
	}
	if e.res.refreshes != 2 {
		t.Errorf("%d refreshes, want one per pass", e.res.refreshes)
	}
}

func TestAddsNodeRole(t *testing.T) {
	const other = "arn:aws:iam::111122223333:role/eks-node-2"
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), nil, Options{NodeRoleARNs: []string{nodeRole, other}})
	out, err := e.l.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Entries, []string{"node role " + other + " added"}) {
		t.Errorf("entries %q", out.Entries)
	}
	got := e.get().Data["mapRoles"]
	if !strings.HasPrefix(got, mapRoles) || !strings.Contains(got[len(mapRoles):], other) {
		t.Errorf("mapRoles:\n%s", got)
	}
	if ev := e.rec.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal NodeRoleAdded ResyncRewrite") {
		t.Errorf("events %q", ev)
	}
}

func TestKeepsUnresolved(t *testing.T) {
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), nil, Options{})
	e.res.set("Dev", "")
	e.res.set("Admin", adminV2)
	out, err := e.l.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != ResultChanged || len(out.Unresolved) != 1 || !strings.Contains(out.Unresolved[0], "permissionset Dev") {
		t.Errorf("outcome %+v", out)
	}
	if got := e.get().Data["mapRoles"]; !strings.Contains(got, `rolearn: "`+devV1+`"`) || !strings.Contains(got, adminV2) {
		t.Errorf("the unresolved entry must keep its ARN, the other must change:\n%s", got)
	}
	ev := e.rec.take()
	if len(ev) != 2 || !strings.HasPrefix(ev[0], "Warning PermissionSetUnresolved ResyncUnresolved: RESYNC by "+Requester+
		": permissionset Dev no longer resolves to an IAM role; the entry keeps its last known rolearn "+devV1) ||
		!strings.HasPrefix(ev[1], "Normal PermissionSetChanged ResyncRewrite") {
		t.Errorf("events %q", ev)
	}

	// Still unresolved, nothing else to do: reported again, nothing written.
	rv := e.get().ResourceVersion
	out, err = e.l.SyncOnce(context.Background())
	if err != nil || out.Result != ResultOK || len(out.Unresolved) != 1 || e.get().ResourceVersion != rv {
		t.Errorf("second pass %+v %v", out, err)
	}
	if ev := e.rec.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning PermissionSetUnresolved ResyncUnresolved") {
		t.Errorf("events %q", ev)
	}
}

func TestFailuresWriteNothing(t *testing.T) {
	errIAM := errors.New("ServiceUnavailable: injected")
	for _, tc := range []struct {
		name   string
		data   map[string]string
		setup  func(*fakeResolver)
		reason string
		note   string
	}{
		{name: "refresh", setup: func(r *fakeResolver) { r.refreshErr = errIAM }, reason: ReasonIAMUnavailable,
			note: "the IAM role listing failed"},
		{name: "lookup", setup: func(r *fakeResolver) { r.lookupErr = errIAM }, reason: ReasonLookupFailed,
			note: "AWS could not answer (iam:ListRoles)"},
		{name: "invalid", data: map[string]string{"mapRoles": mapRoles + "- rolearn: " + nodeRole + "\n  username: dup\n"},
			reason: ReasonInvalidConfigMap, note: "aws-auth has 1 problem(s)"},
		{name: "malformed", data: map[string]string{"mapRoles": mapRoles + "- rolearn: [\n"},
			reason: ReasonInvalidConfigMap, note: "aws-auth has"},
		{name: "too big", data: map[string]string{"mapRoles": mapRoles, "pad": strings.Repeat("x", awsauth.MaxConfigMapBytes-len(mapRoles))},
			reason: ReasonInvalidConfigMap, note: "aws-auth has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = map[string]string{"mapRoles": mapRoles}
			}
			e := newEnv(t, awsAuth(data), nil, Options{})
			e.res.set("Admin", adminV2)
			if tc.setup != nil {
				tc.setup(e.res)
			}
			rv := e.get().ResourceVersion
			out, err := e.l.SyncOnce(context.Background())
			if err == nil || out.Result != ResultFailed {
				t.Fatalf("want a failure, got %+v %v", out, err)
			}
			if got := e.get(); got.ResourceVersion != rv || got.Data["mapRoles"] != data["mapRoles"] {
				t.Errorf("a failed pass wrote the object")
			}
			ev := e.rec.take()
			if len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+tc.reason+" ResyncFailed: RESYNC by "+Requester+": "+tc.note) {
				t.Errorf("events %q, want %s: %s", ev, tc.reason, tc.note)
			}
			if out.UID != "uid-1" {
				t.Errorf("the failure must name the object's UID (kubectl describe filters on it), got %q", out.UID)
			}
			if e.metric("aws_auth_webhook_resync_runs_total", "failed") != 1 ||
				e.metric("aws_auth_webhook_resync_last_success_timestamp_seconds", "") != 0 {
				t.Errorf("metrics not counted as a failure")
			}

			// The cause goes away: the next pass recovers.
			e.res.refreshErr, e.res.lookupErr = nil, nil
			if tc.setup != nil {
				out, err = e.l.SyncOnce(context.Background())
				if err != nil || out.Result != ResultChanged || !strings.Contains(e.get().Data["mapRoles"], adminV2) {
					t.Errorf("after recovery: %+v %v", out, err)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, nil, nil, Options{NodeRoleARNs: []string{nodeRole}})
	out, err := e.l.SyncOnce(context.Background())
	if err != nil || out.Result != ResultOK || !out.NotFound {
		t.Fatalf("%+v %v", out, err)
	}
	err = e.c.Get(context.Background(), key, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the loop must never create aws-auth: %v", err)
	}
	if ev := e.rec.take(); len(ev) != 0 {
		t.Errorf("events %q", ev)
	}
}

// TestConflictRereads has another writer change a different entry of the
// same key between the loop's read and its write: the loop's update
// conflicts, it re-reads and re-renders, and both changes survive.
func TestConflictRereads(t *testing.T) {
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), nil, Options{})
	e.res.set("Admin", adminV2)
	e.res.onLookup = func() {
		cm := e.get()
		cm.Data["mapRoles"] = strings.Replace(cm.Data["mapRoles"], "username: dev", "username: dev-edited", 1)
		if err := e.c.Update(context.Background(), cm); err != nil {
			t.Errorf("competing update: %v", err)
		}
	}
	out, err := e.l.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Conflicts != 1 || out.Result != ResultChanged {
		t.Errorf("outcome %+v, want one conflict retried", out)
	}
	got := e.get().Data["mapRoles"]
	if !strings.Contains(got, "username: dev-edited") || !strings.Contains(got, adminV2) {
		t.Errorf("a change was lost:\n%s", got)
	}
	if e.metric("aws_auth_webhook_resync_conflicts_total", "") != 1 {
		t.Errorf("conflicts metric %v", e.metric("aws_auth_webhook_resync_conflicts_total", ""))
	}
}

func TestConflictsExhausted(t *testing.T) {
	conflict := apierrors.NewConflict(corev1.Resource("configmaps"), "aws-auth", errors.New("the object has been modified"))
	updates := 0
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), &interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			updates++
			return conflict
		},
	}, Options{})
	e.res.set("Admin", adminV2)
	out, err := e.l.SyncOnce(context.Background())
	if err == nil || out.Result != ResultFailed || out.Conflicts != 5 || updates != 5 {
		t.Fatalf("%+v %v (updates %d)", out, err, updates)
	}
	if ev := e.rec.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning WriteConflict ResyncFailed") {
		t.Errorf("events %q", ev)
	}
}

func TestWriteFailure(t *testing.T) {
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), &interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return apierrors.NewForbidden(corev1.Resource("configmaps"), "aws-auth", errors.New("denied by webhook"))
		},
	}, Options{})
	e.res.set("Admin", adminV2)
	if _, err := e.l.SyncOnce(context.Background()); err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("err %v, want the Forbidden error (wrapped)", err)
	}
	if ev := e.rec.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning WriteFailed ResyncFailed") {
		t.Errorf("events %q", ev)
	}
}

func TestStartLoops(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), nil,
		Options{Interval: 5 * time.Minute, JitterFactor: -1, Clock: clk})
	if !e.l.NeedLeaderElection() {
		t.Error("the loop must run on the leader only")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.l.Start(ctx) }()

	// The first pass runs at once; then the loop waits on the clock.
	waitForTimer(clk)
	if n := e.metric("aws_auth_webhook_resync_runs_total", "ok"); n != 1 {
		t.Fatalf("%v passes before the interval, want the first one only", n)
	}
	e.res.set("Admin", adminV2)
	clk.Step(5*time.Minute - time.Second)
	if clk.HasWaiters() != true || strings.Contains(e.get().Data["mapRoles"], adminV2) {
		t.Fatal("a pass ran before the interval was up")
	}
	clk.Step(time.Second)
	waitForTimer(clk) // the second pass ran and the loop waits again
	if !strings.Contains(e.get().Data["mapRoles"], adminV2) {
		t.Fatal("the pass after the interval did not pick up the change")
	}
	cancel()
	if err := <-done; err != nil { // returns at once: it waits on ctx too
		t.Errorf("Start returned %v", err)
	}
}

// waitForTimer returns once the loop is waiting on the clock: its pass is
// over. It spins without sleeping; the test's own timeout catches a hang.
func waitForTimer(clk *clocktesting.FakeClock) {
	for !clk.HasWaiters() {
		goruntime.Gosched()
	}
}

func TestDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Namespace != "kube-system" || o.Name != "aws-auth" || o.Interval != 5*time.Minute || o.JitterFactor != 0.1 ||
		o.Registerer == nil || o.ConflictBackoff.Steps != 5 {
		t.Errorf("defaults %+v", o)
	}
	// Two loops on one registry share the metrics instead of panicking.
	reg := prometheus.NewRegistry()
	a := audit.New(nil, logr.Discard(), reg)
	New(nil, nil, nil, a, logr.Discard(), Options{Registerer: reg})
	New(nil, nil, nil, a, logr.Discard(), Options{Registerer: reg})
}

func TestInterruptedPassIsNotAudited(t *testing.T) {
	e := newEnv(t, awsAuth(map[string]string{"mapRoles": mapRoles}), nil, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.res.refreshErr = context.Canceled
	if out, err := e.l.SyncOnce(ctx); err == nil || out.Result != ResultFailed {
		t.Fatalf("%+v %v", out, err)
	}
	if ev := e.rec.take(); len(ev) != 0 {
		t.Errorf("a pass cut short by shutdown must not raise a Warning: %q", ev)
	}
}
