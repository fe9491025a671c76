// Package accesssync runs access entries from the server (`serve
// --access-entries=plan|sync`): on the leader, at every interval and as
// soon as the stored kube-system/aws-auth changes (a watch on that one
// object), it renders aws-auth, plans the cluster's access entries
// (pkg/eksaccess) and, in sync mode, applies the plan. In plan mode it
// reports drift. It never runs from an admission request: admission
// declares no side effects and answers dry runs without any.
//
// Every change, repair, drift, untranslatable entry and failure is
// audited (Event on aws-auth, log line, metric), and a cluster whose
// authentication mode is CONFIG_MAP (access entries off) is said so once.
package accesssync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/eksaccess"
)

// Mode is the server's access-entries mode.
type Mode string

const (
	ModeOff  Mode = "off"  // access entries are not looked at
	ModePlan Mode = "plan" // drift is reported, nothing is changed
	ModeSync Mode = "sync" // the access entries are kept in line with aws-auth
)

// ParseMode reads the --access-entries flag.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModePlan, ModeSync:
		return m, nil
	}
	return "", fmt.Errorf("--access-entries must be off, plan or sync, not %q", s)
}

// Requester is how the reconciler names itself in audit records.
const Requester = "aws-auth-webhook access-entries"

// Audit reasons.
const (
	ReasonSynced         = "AccessEntriesSynced"         // operations applied, no repair
	ReasonMoved          = "AccessEntriesMoved"          // a permission set's entry moved to its new role (suffix changed)
	ReasonRoleRecreated  = "AccessEntriesRoleRecreated"  // an entry bound to a deleted role was created again
	ReasonRepaired       = "AccessEntriesRepaired"       // both repairs in one pass
	ReasonDrift          = "AccessEntriesDrift"          // plan mode: operations pending
	ReasonUntranslatable = "AccessEntriesUntranslatable" // aws-auth entries with no access entry equivalent
	ReasonConflict       = "AccessEntriesConflict"       // entries aws-auth asks for that are not managed here
	ReasonOff            = "AccessEntriesOff"            // the cluster is in CONFIG_MAP mode
	ReasonFailed         = "AccessEntriesFailed"         // the pass could not do its work
)

// Resolver is what a pass asks AWS: the engine's questions and IAM role
// facts (pkg/awsidentity.Resolver).
type Resolver interface {
	awsauth.Resolver
	eksaccess.Facts
}

// Options configure a Reconciler.
type Options struct {
	Mode            Mode
	Namespace, Name string
	// Interval between passes (the resync interval); default 5m.
	Interval time.Duration
	// Debounce waits this long after a change of aws-auth before a pass,
	// so a burst of edits makes one pass; default 2s.
	Debounce time.Duration
	// NodeRoleARNs are rendered into aws-auth as the webhook does.
	NodeRoleARNs []string
	// Adopt takes over unmanaged entries that aws-auth asks for.
	Adopt bool
	// Registerer receives the metrics; default controller-runtime's.
	Registerer prometheus.Registerer
}

// Reconciler is a leader-elected manager.Runnable.
type Reconciler struct {
	eks  *eksaccess.Client
	r    client.Reader
	cs   corev1client.ConfigMapsGetter
	res  Resolver
	aud  *audit.Auditor
	log  logr.Logger
	opts Options

	trigger chan struct{}
	mu      sync.Mutex // one pass at a time
	// What was last said, so that the same news is not an Event per pass.
	lastMode, lastDrift, lastUntranslatable, lastConflicts string

	runs      *prometheus.CounterVec
	pending   *prometheus.GaugeVec
	untrans   prometheus.Gauge
	conflicts prometheus.Gauge
	ops       *prometheus.CounterVec
}

var (
	_ manager.Runnable               = (*Reconciler)(nil)
	_ manager.LeaderElectionRunnable = (*Reconciler)(nil)
)

// New returns a Reconciler. r reads aws-auth (uncached), cs watches it.
func New(e *eksaccess.Client, r client.Reader, cs corev1client.ConfigMapsGetter, res Resolver, a *audit.Auditor, log logr.Logger, opts Options) *Reconciler {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Minute
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 2 * time.Second
	}
	if opts.Registerer == nil {
		opts.Registerer = crmetrics.Registry
	}
	rc := &Reconciler{eks: e, r: r, cs: cs, res: res, aud: a, log: log, opts: opts, trigger: make(chan struct{}, 1)}
	rc.runs = audit.Register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_webhook_access_entries_runs_total",
		Help: "Access-entry passes, by result (ok: nothing to do, changed, drift, off, failed).",
	}, []string{"result"}))
	rc.pending = audit.Register(opts.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aws_auth_webhook_access_entries_pending_operations",
		Help: "Operations the last pass found needed and did not apply (plan mode: the drift), by action.",
	}, []string{"action"}))
	rc.untrans = audit.Register(opts.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_webhook_access_entries_untranslatable",
		Help: "aws-auth entries the last pass could not translate into access entries.",
	}))
	rc.conflicts = audit.Register(opts.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_webhook_access_entries_conflicts",
		Help: "Access entries aws-auth asks for that were not created by aws-auth-webhook (left alone).",
	}))
	rc.ops = audit.Register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_webhook_access_entries_operations_total",
		Help: "Access-entry operations applied, by action and repair (moved, role-recreated, none).",
	}, []string{"action", "repair"}))
	return rc
}

// NeedLeaderElection is true: only the leader writes access entries.
func (rc *Reconciler) NeedLeaderElection() bool { return true }

func (rc *Reconciler) object() types.NamespacedName {
	return types.NamespacedName{Namespace: rc.opts.Namespace, Name: rc.opts.Name}
}

// Start runs a pass at once, then at every interval and after every change
// of aws-auth, until ctx ends.
func (rc *Reconciler) Start(ctx context.Context) error {
	rc.log.Info("access entries reconciler started", "mode", string(rc.opts.Mode), "cluster", rc.eks.Cluster(),
		"object", rc.object().String(), "interval", rc.opts.Interval.String())
	go rc.watch(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			rc.log.Info("access entries reconciler stopped")
			return nil
		case <-timer.C:
		case <-rc.trigger:
			// A burst of edits makes one pass.
			select {
			case <-time.After(rc.opts.Debounce):
			case <-ctx.Done():
				return nil
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		_, _ = rc.SyncOnce(ctx) // audited inside
		timer.Reset(wait.Jitter(rc.opts.Interval, 0.1))
	}
}

// Trigger asks for a pass soon.
func (rc *Reconciler) Trigger() {
	select {
	case rc.trigger <- struct{}{}:
	default:
	}
}

// watch triggers a pass whenever the stored aws-auth changes. It watches
// the one object (a field selector on its name, which RBAC can limit with
// resourceNames) and starts again after any error.
func (rc *Reconciler) watch(ctx context.Context) {
	sel := fields.OneTermEqualSelector("metadata.name", rc.opts.Name).String()
	rv := ""
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 6, Cap: 30 * time.Second}
	for ctx.Err() == nil {
		w, err := rc.cs.ConfigMaps(rc.opts.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			rc.log.V(1).Info("watching aws-auth failed; retrying", "error", err.Error())
			rv = ""
			select {
			case <-time.After(backoff.Step()):
			case <-ctx.Done():
			}
			continue
		}
		backoff = wait.Backoff{Duration: time.Second, Factor: 2, Steps: 6, Cap: 30 * time.Second}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
					if rv != "" {
						rc.log.V(1).Info("aws-auth changed; access entries pass queued", "resourceVersion", cm.ResourceVersion)
						rc.Trigger()
					}
					rv = cm.ResourceVersion
				}
			case watch.Bookmark:
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
					rv = cm.ResourceVersion
				}
			case watch.Error:
				rv = "" // e.g. 410 Gone: start from the current state
			}
		}
		w.Stop()
		if rv == "" {
			rc.Trigger() // a change may have been missed
		}
	}
}

// Result of a pass, as the runs metric counts it.
const (
	ResultOK      = "ok"
	ResultChanged = "changed"
	ResultDrift   = "drift"
	ResultOff     = "off"
	ResultFailed  = "failed"
)

// SyncOnce runs one pass and returns its result.
func (rc *Reconciler) SyncOnce(ctx context.Context) (*eksaccess.Pass, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	start := time.Now()
	pass, result, err := rc.pass(ctx)
	rc.runs.WithLabelValues(result).Inc()
	rc.log.V(1).Info("access entries pass", "result", result, "duration", time.Since(start).String())
	return pass, err
}

func (rc *Reconciler) pass(ctx context.Context) (*eksaccess.Pass, string, error) {
	cm := &corev1.ConfigMap{}
	if err := rc.r.Get(ctx, rc.object(), cm); err != nil {
		if apierrors.IsNotFound(err) {
			rc.log.V(1).Info("aws-auth does not exist; no access entries pass")
			return nil, ResultOK, nil
		}
		return nil, ResultFailed, rc.fail(ctx, "", fmt.Errorf("reading %s: %w", rc.object(), err))
	}
	extra := 0
	for k, v := range cm.BinaryData {
		extra += len(k) + len(v)
	}
	res, err := awsauth.Render(ctx, cm.Data, rc.res, awsauth.Options{NodeRoleARNs: rc.opts.NodeRoleARNs, KeepUnresolved: true, ExtraBytes: extra})
	if err != nil {
		return nil, ResultFailed, rc.fail(ctx, cm.UID, fmt.Errorf("aws-auth could not be rendered, so access entries were not changed: %w", err))
	}
	if errs := res.Findings.Errors(); len(errs) > 0 {
		return nil, ResultFailed, rc.fail(ctx, cm.UID, fmt.Errorf("aws-auth has %d error(s), so access entries were not changed: %s", len(errs), strings.Join(errs.Strings(), "; ")))
	}
	opts := accessentries.Options{Adopt: rc.opts.Adopt}
	var pass *eksaccess.Pass
	if rc.opts.Mode == ModeSync {
		pass, err = rc.eks.Sync(ctx, res, rc.res, opts)
	} else {
		pass, err = rc.eks.Plan(ctx, res, rc.res, opts)
	}
	if pass != nil {
		rc.sayMode(ctx, cm.UID, pass.Mode)
		if len(pass.Done) > 0 {
			rc.reportDone(ctx, cm.UID, pass.Done)
		}
	}
	if err != nil {
		return pass, ResultFailed, rc.fail(ctx, cm.UID, err)
	}
	if pass.Plan == nil {
		rc.setPending(nil)
		return pass, ResultOff, nil
	}
	p := pass.Plan
	rc.reportLists(ctx, cm.UID, p)
	switch {
	case rc.opts.Mode == ModePlan && len(p.Ops) > 0:
		rc.setPending(p.Ops)
		rc.reportDrift(ctx, cm.UID, p.Ops)
		return pass, ResultDrift, nil
	case rc.opts.Mode == ModePlan:
		rc.setPending(nil)
		rc.reportDrift(ctx, cm.UID, nil)
		return pass, ResultOK, nil
	}
	rc.setPending(nil)
	if len(pass.Done) > 0 {
		return pass, ResultChanged, nil
	}
	return pass, ResultOK, nil
}

func (rc *Reconciler) record(ctx context.Context, uid types.UID, action audit.Action, reason, msg string, entries []string) {
	rc.aud.Record(ctx, audit.Record{Action: action, Reason: reason, Operation: audit.OperationAccessEntries,
		Requester: Requester, Object: rc.object(), UID: uid, Entries: entries, Message: msg})
}

func (rc *Reconciler) fail(ctx context.Context, uid types.UID, err error) error {
	if ctx.Err() != nil {
		rc.log.Info("access entries pass interrupted", "error", err.Error())
		return err
	}
	rc.record(ctx, uid, audit.ActionAccessEntriesFailed, ReasonFailed,
		fmt.Sprintf("access entries of cluster %s: %v", rc.eks.Cluster(), err), nil)
	return err
}

// sayMode says, once per change of mode, what the authentication mode
// means for access entries.
func (rc *Reconciler) sayMode(ctx context.Context, uid types.UID, mode string) {
	if mode == rc.lastMode {
		return
	}
	rc.lastMode = mode
	switch mode {
	case accessentries.AuthModeConfigMap:
		rc.record(ctx, uid, audit.ActionAccessEntriesOff, ReasonOff, fmt.Sprintf(
			"cluster %s is in authentication mode CONFIG_MAP: access entries are off and only aws-auth is read, so --access-entries=%s does nothing until the mode is API_AND_CONFIG_MAP "+
				"(aws eks update-cluster-config --name %s --access-config authenticationMode=API_AND_CONFIG_MAP)", rc.eks.Cluster(), rc.opts.Mode, rc.eks.Cluster()), nil)
	default:
		rc.log.Info("cluster authentication mode", "cluster", rc.eks.Cluster(), "mode", mode,
			"meaning", map[string]string{
				accessentries.AuthModeAPIAndConfigMap: "access entries and aws-auth are both read; an access entry wins for its principal",
				accessentries.AuthModeAPI:             "only access entries are read; aws-auth is ignored by the cluster",
			}[mode])
	}
}

func (rc *Reconciler) reportDone(ctx context.Context, uid types.UID, done []accessentries.Op) {
	var lines []string
	moved, recreated := 0, 0
	for _, op := range done {
		repair := op.Repair
		if repair == "" {
			repair = "none"
		}
		rc.ops.WithLabelValues(string(op.Action), repair).Inc()
		switch {
		case op.Repair == accessentries.RepairMoved && op.Action == accessentries.ActionCreate:
			moved++ // its delete is the other half of the same move
		case op.Repair == accessentries.RepairRoleRecreated:
			recreated++
		}
		lines = append(lines, op.String())
	}
	reason := ReasonSynced
	msg := fmt.Sprintf("access entries of cluster %s: %d operation(s) applied", rc.eks.Cluster(), len(done))
	if moved+recreated > 0 {
		// Distinct reasons: Events of one reason on one object are merged
		// into a series that keeps the first note.
		switch {
		case moved > 0 && recreated > 0:
			reason = ReasonRepaired
		case moved > 0:
			reason = ReasonMoved
		default:
			reason = ReasonRoleRecreated
		}
		var what []string
		if moved > 0 {
			what = append(what, fmt.Sprintf("moved %d entr%s to a permission set's new role (suffix changed)", moved, plural(moved)))
		}
		if recreated > 0 {
			what = append(what, fmt.Sprintf("recreated %d entr%s whose role was deleted and created again (the old entry granted nothing)", recreated, plural(recreated)))
		}
		msg += "; repaired: " + strings.Join(what, "; ")
	}
	rc.record(ctx, uid, audit.ActionAccessEntriesSynced, reason, msg, lines)
}

func plural(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

func digest(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h[:8])
}

func (rc *Reconciler) reportDrift(ctx context.Context, uid types.UID, ops []accessentries.Op) {
	var lines []string
	for _, op := range ops {
		lines = append(lines, op.String())
	}
	d := digest(lines)
	if d == rc.lastDrift {
		return
	}
	rc.lastDrift = d
	if d == "" {
		rc.log.Info("access entries match aws-auth", "cluster", rc.eks.Cluster())
		return
	}
	rc.record(ctx, uid, audit.ActionAccessEntriesDrift, ReasonDrift, fmt.Sprintf(
		"access entries of cluster %s differ from aws-auth: %d operation(s) pending (plan mode changes nothing; aws-auth-webhook access-entries apply, or --access-entries=sync, would)",
		rc.eks.Cluster(), len(ops)), lines)
}

func (rc *Reconciler) reportLists(ctx context.Context, uid types.UID, p *accessentries.Plan) {
	rc.untrans.Set(float64(len(p.Untranslatable)))
	rc.conflicts.Set(float64(len(p.Conflicts)))
	var lines []string
	for _, u := range p.Untranslatable {
		lines = append(lines, fmt.Sprintf("%s: %s. Fix: %s", u.Source, u.Reason, u.Fix))
	}
	if d := digest(lines); d != rc.lastUntranslatable {
		rc.lastUntranslatable = d
		if d != "" {
			rc.record(ctx, uid, audit.ActionAccessEntriesUntranslatable, ReasonUntranslatable,
				fmt.Sprintf("%d aws-auth entr%s cannot be translated into access entries; they are not sent to EKS", len(lines), plural(len(lines))), lines)
		}
	}
	lines = nil
	for _, c := range p.Conflicts {
		lines = append(lines, c.PrincipalARN+": "+c.Reason)
	}
	if d := digest(lines); d != rc.lastConflicts {
		rc.lastConflicts = d
		if d != "" {
			rc.record(ctx, uid, audit.ActionAccessEntriesUntranslatable, ReasonConflict,
				fmt.Sprintf("%d access entr%s that aws-auth asks for were not created by aws-auth-webhook and are left alone", len(lines), plural(len(lines))), lines)
		}
	}
}

func (rc *Reconciler) setPending(ops []accessentries.Op) {
	counts := map[string]float64{}
	for _, a := range []accessentries.Action{accessentries.ActionAdopt, accessentries.ActionCreate, accessentries.ActionUpdate,
		accessentries.ActionAssociate, accessentries.ActionDisassociate, accessentries.ActionRecreate, accessentries.ActionDelete} {
		counts[string(a)] = 0
	}
	for _, op := range ops {
		counts[string(op.Action)]++
	}
	for a, n := range counts {
		rc.pending.WithLabelValues(a).Set(n)
	}
}

// ErrNoCluster is returned by Validate when a mode needs a cluster name.
var ErrNoCluster = errors.New("--eks-cluster-name is required when --access-entries is plan or sync")
