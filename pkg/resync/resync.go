// Package resync keeps the permission-set ARNs in kube-system/aws-auth
// current. IAM Identity Center gives a permission set's role a new random
// suffix when the permission set is unassigned and reassigned; the entry
// written as `permissionset: Admin` then maps a role that no longer exists.
// The Loop re-resolves every such entry through the same engine the webhook
// uses (awsauth.Render) and writes only the data keys that changed, with
// optimistic concurrency, so a concurrent edit is never lost. It never drops
// an entry it cannot resolve: the last known ARN stays and is reported.
package resync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// Resolver is what the loop asks AWS: the engine's questions, plus Refresh,
// which forces one new IAM listing per pass so a changed suffix is seen no
// later than one Interval after it changed (pkg/awsidentity.Resolver).
type Resolver interface {
	awsauth.Resolver
	Refresh(ctx context.Context) error
}

// Defaults for Options fields left zero.
const (
	DefaultNamespace    = "kube-system"
	DefaultName         = "aws-auth"
	DefaultInterval     = 5 * time.Minute
	DefaultJitterFactor = 0.1
)

// Requester is how the loop names itself in audit records.
const Requester = "aws-auth-webhook resync loop"

// Audit reasons of the loop's own records (rewrites and failures).
const (
	ReasonPermissionSetChanged    = "PermissionSetChanged"    // a permission set's role ARN changed
	ReasonNodeRoleAdded           = "NodeRoleAdded"           // only node role entries were added
	ReasonEntriesRewritten        = "EntriesRewritten"        // other rewrites ($ACCOUNTID, IAM paths)
	ReasonPermissionSetUnresolved = "PermissionSetUnresolved" // the engine's finding reason
	ReasonIAMUnavailable          = "IAMUnavailable"          // Refresh failed
	ReasonLookupFailed            = "LookupFailed"            // the engine could not get an AWS answer
	ReasonInvalidConfigMap        = "InvalidConfigMap"        // the object has error findings
	ReasonRenderFailed            = "RenderFailed"            // the engine refused the options
	ReasonReadFailed              = "ReadFailed"              // Get failed (other than NotFound)
	ReasonWriteFailed             = "WriteFailed"             // Update failed
	ReasonWriteConflict           = "WriteConflict"           // conflicts outlasted every retry
)

// Options configure a Loop. Zero values pick the defaults.
type Options struct {
	// Namespace and Name of the ConfigMap; default kube-system / aws-auth.
	Namespace, Name string
	// Interval between passes; default 5m.
	Interval time.Duration
	// JitterFactor stretches each wait by up to this fraction of Interval,
	// as wait.JitterUntil does; default 0.1. A negative value disables
	// jitter.
	JitterFactor float64
	// NodeRoleARNs are the canonical node role ARNs to keep mapped.
	NodeRoleARNs []string
	// Registerer receives the loop's metrics; default controller-runtime's
	// metrics.Registry. Tests pass a fresh prometheus.NewRegistry().
	Registerer prometheus.Registerer
	// ConflictBackoff paces the re-read/re-render/re-write after an update
	// conflict; default retry.DefaultRetry (5 attempts, ~10ms apart).
	ConflictBackoff wait.Backoff
	// Clock times the passes; default the real clock. Tests step a fake one.
	Clock clock.Clock
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	switch {
	case o.JitterFactor == 0:
		o.JitterFactor = DefaultJitterFactor
	case o.JitterFactor < 0:
		o.JitterFactor = 0
	}
	if o.Registerer == nil {
		o.Registerer = crmetrics.Registry
	}
	if o.ConflictBackoff.Steps <= 0 {
		o.ConflictBackoff = retry.DefaultRetry
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// Result is the outcome of a pass, as the runs metric counts it.
type Result string

const (
	ResultOK      Result = "ok"      // nothing to change (or no aws-auth)
	ResultChanged Result = "changed" // aws-auth was rewritten
	ResultFailed  Result = "failed"  // nothing was written; see the error
)

// Outcome says what one pass did.
type Outcome struct {
	Result Result
	// NotFound: the ConfigMap does not exist; the loop never creates it.
	NotFound bool
	// Changed lists the data keys written, sorted.
	Changed []string
	// Entries has one line per changed entry: "permissionset Admin: <old
	// ARN> -> <new ARN>", "node role <ARN> added", ...
	Entries []string
	// Unresolved has one line per permission set that no longer resolves
	// (its entry kept its last ARN).
	Unresolved []string
	// Conflicts counts the updates refused for a stale resourceVersion and
	// retried from a fresh read.
	Conflicts int
	// ResourceVersion of the object as written, or as last read when
	// nothing was written.
	ResourceVersion string
	// UID of the object, when it was read.
	UID types.UID
}

// Loop is the resync loop: a manager.Runnable that runs only on the leader.
type Loop struct {
	c    client.Client
	r    client.Reader
	res  Resolver
	aud  *audit.Auditor
	log  logr.Logger
	opts Options

	mu sync.Mutex // one pass at a time

	runs        *prometheus.CounterVec
	conflicts   prometheus.Counter
	lastSuccess prometheus.Gauge
}

var (
	_ manager.Runnable               = (*Loop)(nil)
	_ manager.LeaderElectionRunnable = (*Loop)(nil)
)

// New returns a Loop that writes through c and reads through r (in
// production mgr.GetAPIReader(): uncached, so no cluster-wide ConfigMap
// informer or list/watch RBAC is needed), resolves through res and audits
// through a.
func New(c client.Client, r client.Reader, res Resolver, a *audit.Auditor, log logr.Logger, opts Options) *Loop {
	opts = opts.withDefaults()
	l := &Loop{c: c, r: r, res: res, aud: a, log: log, opts: opts}
	l.runs = audit.Register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_webhook_resync_runs_total",
		Help: "Resync passes over aws-auth, by result (ok, changed, failed).",
	}, []string{"result"}))
	for _, r := range []Result{ResultOK, ResultChanged, ResultFailed} {
		l.runs.WithLabelValues(string(r)) // export zeros
	}
	l.conflicts = audit.Register(opts.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aws_auth_webhook_resync_conflicts_total",
		Help: "Updates of aws-auth by the resync loop refused for a stale resourceVersion and retried.",
	}))
	l.lastSuccess = audit.Register(opts.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_webhook_resync_last_success_timestamp_seconds",
		Help: "Unix time of the last resync pass that did not fail.",
	}))
	return l
}

// NeedLeaderElection is true: only the leader resyncs.
func (l *Loop) NeedLeaderElection() bool { return true }

// Start syncs at once, then every Interval (with jitter, counted from the
// end of the previous pass) until ctx ends. A failed pass is audited and
// retried at the next interval; Start itself only returns when ctx ends.
func (l *Loop) Start(ctx context.Context) error {
	l.log.Info("resync loop started", "object", l.object().String(), "interval", l.opts.Interval.String(),
		"jitterFactor", l.opts.JitterFactor)
	for ctx.Err() == nil {
		_, _ = l.SyncOnce(ctx) // audited and counted inside
		next := l.opts.Interval
		if l.opts.JitterFactor > 0 { // wait.Jitter takes 0 to mean 1
			next = wait.Jitter(next, l.opts.JitterFactor)
		}
		t := l.opts.Clock.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C():
		}
	}
	l.log.Info("resync loop stopped")
	return nil
}

func (l *Loop) object() types.NamespacedName {
	return types.NamespacedName{Namespace: l.opts.Namespace, Name: l.opts.Name}
}

// SyncOnce runs one pass: refresh the IAM listing, read aws-auth, render it,
// audit what does not resolve, and write the changed keys if any. The error
// is non-nil exactly when Outcome.Result is ResultFailed; the failure has
// then been audited (ResyncFailed) and nothing was written.
func (l *Loop) SyncOnce(ctx context.Context) (Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	out, err := l.sync(ctx)
	if err != nil {
		out.Result = ResultFailed
	}
	l.runs.WithLabelValues(string(out.Result)).Inc()
	if err == nil {
		l.lastSuccess.SetToCurrentTime()
	}
	l.log.V(1).Info("resync pass", "result", string(out.Result), "changed", out.Changed,
		"conflicts", out.Conflicts, "duration", time.Since(start).String())
	return out, err
}

// failure is a pass that could not do its work: audited as ResyncFailed.
type failure struct {
	reason  string
	message string
	entries []string
	err     error
}

func (f *failure) Error() string { return f.message }
func (f *failure) Unwrap() error { return f.err }

func (l *Loop) sync(ctx context.Context) (Outcome, error) {
	var out Outcome
	if err := l.res.Refresh(ctx); err != nil {
		// Best effort: the UID ties the Event to the object, which `kubectl
		// describe` needs to show it.
		cm := &corev1.ConfigMap{}
		if l.r.Get(ctx, l.object(), cm) == nil {
			out.UID, out.ResourceVersion = cm.UID, cm.ResourceVersion
		}
		return out, l.fail(ctx, &out, &failure{reason: ReasonIAMUnavailable, err: err,
			message: fmt.Sprintf("the IAM role listing failed, so permission sets cannot be re-resolved; aws-auth was not changed: %v", err)})
	}

	var p *pass
	err := retry.RetryOnConflict(l.opts.ConflictBackoff, func() error {
		var err error
		p, err = l.attempt(ctx)
		if apierrors.IsConflict(err) {
			out.Conflicts++
			l.conflicts.Inc()
		}
		return err
	})
	if p != nil {
		out.UID, out.ResourceVersion = p.uid, p.resourceVersion
	}
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = &failure{reason: ReasonWriteConflict, err: err,
				message: fmt.Sprintf("aws-auth kept changing under the resync loop (%d conflicting updates); it was not changed this time: %v", out.Conflicts, err)}
		}
		return out, l.fail(ctx, &out, f)
	}
	if p.notFound {
		out.NotFound, out.Result = true, ResultOK
		l.log.V(1).Info("the ConfigMap does not exist; the resync loop never creates it", "object", l.object().String())
		return out, nil
	}

	// Unresolved permission sets are reported on every pass, whether or not
	// something else changed.
	for _, u := range p.unresolved {
		out.Unresolved = append(out.Unresolved, u.finding.String())
		l.aud.Record(ctx, audit.Record{
			Action:    audit.ActionResyncUnresolved,
			Reason:    ReasonPermissionSetUnresolved,
			Operation: audit.OperationResync,
			Requester: Requester,
			Object:    l.object(),
			UID:       p.uid,
			Entries:   []string{u.finding.String()},
			Message: fmt.Sprintf("%s no longer resolves to an IAM role; the entry keeps its last known rolearn %s",
				u.finding.Entry, u.kept),
		})
	}

	if len(p.changed) == 0 {
		out.Result = ResultOK
		return out, nil
	}
	out.Result, out.Changed, out.Entries = ResultChanged, p.changed, p.entries
	l.aud.Record(ctx, audit.Record{
		Action:    audit.ActionResyncRewrite,
		Reason:    p.reason,
		Operation: audit.OperationResync,
		Requester: Requester,
		Object:    l.object(),
		UID:       p.uid,
		Entries:   p.entries,
		Message: fmt.Sprintf("the resync loop rewrote %s (resourceVersion %s -> %s)",
			strings.Join(p.changed, ", "), p.readVersion, p.resourceVersion),
	})
	return out, nil
}

func (l *Loop) fail(ctx context.Context, out *Outcome, f *failure) error {
	out.Result = ResultFailed
	if ctx.Err() != nil {
		// Shutting down (or the caller gave up): not a fact about aws-auth.
		l.log.Info("resync pass interrupted", "error", f.Error())
		return f
	}
	l.aud.Record(ctx, audit.Record{
		Action:    audit.ActionResyncFailed,
		Reason:    f.reason,
		Operation: audit.OperationResync,
		Requester: Requester,
		Object:    l.object(),
		UID:       out.UID,
		Entries:   f.entries,
		Message:   f.message,
	})
	return f
}

// pass is what one read-render-write attempt found and did.
type pass struct {
	notFound        bool
	uid             types.UID
	readVersion     string // resourceVersion read
	resourceVersion string // resourceVersion written (or read when nothing was)
	changed         []string
	entries         []string
	reason          string
	unresolved      []unresolved
}

// unresolved is a permission set that no longer resolves, and the ARN its
// entry keeps.
type unresolved struct {
	finding awsauth.Finding
	kept    string
}

// attempt reads, renders from scratch and writes with the resourceVersion it
// read. A Conflict error is returned as is, so RetryOnConflict starts over;
// every other failure is a *failure.
func (l *Loop) attempt(ctx context.Context) (*pass, error) {
	cm := &corev1.ConfigMap{}
	if err := l.r.Get(ctx, l.object(), cm); err != nil {
		if apierrors.IsNotFound(err) {
			return &pass{notFound: true}, nil
		}
		return nil, &failure{reason: ReasonReadFailed, err: err,
			message: fmt.Sprintf("reading %s failed; nothing was changed: %v", l.object(), err)}
	}
	p := &pass{uid: cm.UID, readVersion: cm.ResourceVersion, resourceVersion: cm.ResourceVersion}

	extra := 0
	for k, v := range cm.BinaryData {
		extra += len(k) + len(v)
	}
	res, err := awsauth.Render(ctx, cm.Data, l.res, awsauth.Options{
		NodeRoleARNs:   l.opts.NodeRoleARNs,
		KeepUnresolved: true,
		ExtraBytes:     extra,
	})
	if err != nil {
		var le *awsauth.LookupError
		if errors.As(err, &le) {
			return p, &failure{reason: ReasonLookupFailed, err: err,
				message: fmt.Sprintf("AWS could not answer (%s); aws-auth was not changed: %v", le.Call, err)}
		}
		return p, &failure{reason: ReasonRenderFailed, err: err,
			message: fmt.Sprintf("aws-auth could not be rendered; it was not changed: %v", err)}
	}
	if errs := res.Findings.Errors(); len(errs) > 0 {
		return p, &failure{reason: ReasonInvalidConfigMap, entries: errs.Strings(),
			message: fmt.Sprintf("aws-auth has %d problem(s) the resync loop does not fix, so it was not changed; fix them (the webhook rejects writes that keep them)", len(errs))}
	}
	for _, f := range res.Findings.Warnings() {
		if f.Reason != ReasonPermissionSetUnresolved {
			continue
		}
		u := unresolved{finding: f}
		for _, m := range res.Roles {
			if f.Index != nil && m.Index == *f.Index {
				u.kept = m.ARN
			}
		}
		p.unresolved = append(p.unresolved, u)
	}
	if len(res.Changed) == 0 {
		return p, nil
	}

	updated := cm.DeepCopy()
	if updated.Data == nil {
		updated.Data = map[string]string{}
	}
	for _, k := range res.Changed {
		updated.Data[k] = res.Data[k]
	}
	// updated carries the resourceVersion read: a write in between is a
	// Conflict, never overwritten.
	if err := l.c.Update(ctx, updated); err != nil {
		if apierrors.IsConflict(err) {
			return p, err
		}
		return p, &failure{reason: ReasonWriteFailed, err: err,
			message: fmt.Sprintf("updating %s failed; nothing was changed: %v", l.object(), err)}
	}
	p.resourceVersion = updated.ResourceVersion
	p.changed = res.Changed
	p.entries, p.reason = describeChanges(awsauth.Lint(cm.Data), res, l.opts.NodeRoleARNs)
	return p, nil
}

// describeChanges lists, one line each, the entries that differ between the
// document as read and as written, and picks the audit reason.
func describeChanges(before, after *awsauth.Result, nodeRoles []string) ([]string, string) {
	nodeKeys := map[string]bool{}
	for _, n := range nodeRoles {
		if k, ok := awsauth.IdentityKey(n); ok {
			nodeKeys[k] = true
		}
	}
	var entries []string
	psChanged, nodeAdded, other := false, false, false
	diff := func(key string, was, is []awsauth.Mapping) {
		old := make(map[int]awsauth.Mapping, len(was))
		for _, m := range was {
			old[m.Index] = m
		}
		for _, m := range is {
			o, existed := old[m.Index]
			switch {
			case existed && o.ARN == m.ARN:
			case existed && m.PermissionSet != "":
				psChanged = true
				entries = append(entries, fmt.Sprintf("permissionset %s: %s -> %s", m.PermissionSet, orNone(o.ARN), m.ARN))
			case existed:
				other = true
				entries = append(entries, fmt.Sprintf("%s[%d]: %s -> %s", key, m.Index, orNone(o.ARN), m.ARN))
			default:
				if k, ok := awsauth.IdentityKey(m.ARN); ok && nodeKeys[k] && key == awsauth.KeyMapRoles {
					nodeAdded = true
					entries = append(entries, fmt.Sprintf("node role %s added", m.ARN))
				} else {
					other = true
					entries = append(entries, fmt.Sprintf("%s[%d] (%s) added", key, m.Index, m.Label()))
				}
			}
		}
	}
	diff(awsauth.KeyMapRoles, before.Roles, after.Roles)
	diff(awsauth.KeyMapUsers, before.Users, after.Users)
	if len(entries) == 0 {
		for _, k := range after.Changed {
			entries = append(entries, fmt.Sprintf("data key %s rewritten", k))
		}
	}
	switch {
	case psChanged:
		return entries, ReasonPermissionSetChanged
	case nodeAdded && !other:
		return entries, ReasonNodeRoleAdded
	default:
		return entries, ReasonEntriesRewritten
	}
}

func orNone(s string) string {
	if s == "" {
		return "(no rolearn)"
	}
	return s
}
