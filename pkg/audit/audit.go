// Package audit records, in one place and three ways, everything the webhook
// and the resync loop do to kube-system/aws-auth that people need to know
// about: every rejected write, every break-glass bypass of the lockout guard
// and every rewrite (or failed rewrite) by the resync loop.
//
// Each Record becomes
//   - a Kubernetes Event (events.k8s.io/v1) regarding the ConfigMap, so
//     `kubectl describe configmap aws-auth -n kube-system` and `kubectl
//     events` show it next to the object;
//   - one structured log line with the requester, the message and the
//     entries (the Event note is capped at 1 KiB; the log line at
//     MaxEntries entries of MaxFieldBytes, a message of MaxMessageBytes);
//   - an increment of aws_auth_webhook_audit_events_total{action,reason}.
//
// A Record carries no credentials or tokens, and none may be added: the
// requester is a user name and, for IAM users, their ARN.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/textcap"
)

// Action is what happened.
type Action string

const (
	// ActionRejected: admission denied a write.
	ActionRejected Action = "Rejected"
	// ActionBreakGlass: a break-glass group member bypassed the lockout guard.
	ActionBreakGlass Action = "BreakGlass"
	// ActionResyncRewrite: the resync loop rewrote aws-auth (a suffix
	// changed, a node role was added).
	ActionResyncRewrite Action = "ResyncRewrite"
	// ActionResyncUnresolved: a permission set no longer resolves; its last
	// ARN was kept.
	ActionResyncUnresolved Action = "ResyncUnresolved"
	// ActionResyncFailed: the loop could not do its work (IAM down, object
	// invalid); nothing was written.
	ActionResyncFailed Action = "ResyncFailed"

	// Access entries (pkg/accesssync): operations applied (repairs
	// included), drift found in plan mode, aws-auth entries with no
	// access-entry equivalent or left alone, a cluster with access entries
	// off, a pass that failed.
	ActionAccessEntriesSynced         Action = "AccessEntriesSynced"
	ActionAccessEntriesDrift          Action = "AccessEntriesDrift"
	ActionAccessEntriesUntranslatable Action = "AccessEntriesUntranslatable"
	ActionAccessEntriesOff            Action = "AccessEntriesOff"
	ActionAccessEntriesFailed         Action = "AccessEntriesFailed"
	// ActionRepaired: admission put back what an admitted edit removed (a
	// configured node-role entry), and said so in a warning.
	ActionRepaired Action = "Repaired"
)

// Operations for Record.Operation besides the admission ones (CREATE,
// UPDATE, DELETE).
const (
	OperationResync        = "RESYNC"
	OperationAccessEntries = "ACCESS-ENTRIES"
)

// Limits of the events.k8s.io/v1 API (the apiserver rejects longer values).
const (
	// MaxNoteBytes is the longest Event note the API accepts.
	MaxNoteBytes = 1024
	// MaxReasonBytes is the longest Event reason the API accepts.
	MaxReasonBytes = 128
)

// TruncationMarker ends a note that had to be cut to MaxNoteBytes, after
// the number of bytes cut: " …[812 bytes cut: the record is in the
// webhook log]".
const TruncationMarker = " bytes cut: the record is in the webhook log]"

// Bounds on a record's log line: a hostile aws-auth draws a finding per
// entry, and each may quote a long value. What is cut says so.
const (
	// MaxEntries is how many entries a record keeps; a last one says how
	// many more there were.
	MaxEntries = 100
	// MaxFieldBytes bounds each entry and the requester.
	MaxFieldBytes = 1 << 10
	// MaxMessageBytes bounds the message (the admission denial is bounded
	// the same).
	MaxMessageBytes = 32 << 10
)

// Record is one audited fact.
type Record struct {
	Action Action
	// Reason is a stable rule name, e.g. MalformedYAML, DuplicateARN,
	// DeleteRefused, LockoutSelf, LockoutNodeRole, PermissionSetChanged. It
	// becomes the Event reason and the metric's reason label; a value that
	// is not CamelCase is made so (see EventReason).
	Reason string
	// Operation is CREATE, UPDATE, DELETE, or RESYNC.
	Operation string
	// Requester says who: "alice (arn:aws:iam::1:role/x)" or the service
	// account.
	Requester string
	// Object is the ConfigMap.
	Object types.NamespacedName
	// UID is the ConfigMap's UID, when the caller has it (it is empty for a
	// rejected CREATE). It ties the Event to this incarnation of the object.
	UID types.UID
	// Entries holds one line per finding or changed entry.
	Entries []string
	// Message is the summary the user was shown.
	Message string
}

// Auditor records Records. It is safe for concurrent use.
type Auditor struct {
	rec    recorder.EventRecorder
	log    logr.Logger
	events *prometheus.CounterVec
}

// New returns an Auditor that emits Events through rec (in production
// mgr.GetEventRecorder("aws-auth-webhook"); nil emits none), logs to log and
// counts on reg (controller-runtime's metrics.Registry in production; nil
// counts without exporting). Several Auditors may share a registerer: they
// then share the counter.
func New(rec recorder.EventRecorder, log logr.Logger, reg prometheus.Registerer) *Auditor {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_webhook_audit_events_total",
		Help: "Audited events on aws-auth (rejections, break-glass bypasses, resync rewrites and failures), by action and reason.",
	}, []string{"action", "reason"})
	return &Auditor{rec: rec, log: log, events: Register(reg, events)}
}

// Register registers c on reg and returns it, or, when reg already holds an
// identical collector, returns that one, so that several components built
// against the same registry (tests build many) share a metric instead of
// panicking. Any other registration error is a programming error and panics,
// as prometheus.MustRegister does. A nil reg leaves c unregistered.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("audit: registering metric: %v", err))
	}
	return c
}

// Record emits r as an Event, a log line and a metric increment.
func (a *Auditor) Record(ctx context.Context, r Record) {
	if a == nil {
		return
	}
	r = bounded(r)
	reason := EventReason(r.Reason, r.Action)
	a.events.WithLabelValues(string(r.Action), reason).Inc()

	kv := []any{
		"action", string(r.Action),
		"reason", reason,
		"operation", r.Operation,
		"requester", r.Requester,
		"object", r.Object.String(),
	}
	if r.UID != "" {
		kv = append(kv, "uid", string(r.UID))
	}
	kv = append(kv, "entries", entriesOrEmpty(r.Entries), "message", r.Message)
	a.log.Info("audit: aws-auth "+string(r.Action), kv...)

	if a.rec == nil {
		return
	}
	regarding := &corev1.ConfigMap{
		// Set, so the reference does not depend on the recorder's scheme.
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.Object.Namespace,
			Name:      r.Object.Name,
			UID:       r.UID,
		},
	}
	// The note goes through a "%s" format: user text may contain '%'.
	a.rec.Eventf(regarding, nil, EventType(r.Action), reason, string(r.Action), "%s", Note(r))
}

// EventType is the Event type of an action: Normal for a resync rewrite
// and applied access-entry operations, Warning for everything else
// (rejections, bypasses, failures, drift).
func EventType(a Action) string {
	if a == ActionResyncRewrite || a == ActionAccessEntriesSynced {
		return corev1.EventTypeNormal
	}
	return corev1.EventTypeWarning
}

// EventReason returns reason as a valid CamelCase Event reason: kept when it
// already is one ([A-Z][A-Za-z0-9]*, at most MaxReasonBytes), otherwise
// made one by capitalizing its alphanumeric words ("lockout-self" →
// "LockoutSelf"). An empty result falls back to the action.
func EventReason(reason string, a Action) string {
	if isCamel(reason) {
		return reason
	}
	var b strings.Builder
	for _, word := range strings.FieldsFunc(reason, func(r rune) bool {
		return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r))
	}) {
		b.WriteString(strings.ToUpper(word[:1]))
		b.WriteString(word[1:])
	}
	out := b.String()
	if out == "" || !unicode.IsUpper(rune(out[0])) {
		out = string(a) + out
	}
	if len(out) > MaxReasonBytes {
		out = out[:MaxReasonBytes]
	}
	if !isCamel(out) {
		return string(a)
	}
	return out
}

func isCamel(s string) bool {
	if s == "" || len(s) > MaxReasonBytes || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Note is the Event note of r: who did what, then the message, then each
// entry the message does not already contain, on its own line; cut to
// MaxNoteBytes (on a UTF-8 boundary) with TruncationMarker at the end.
func Note(r Record) string {
	var b strings.Builder
	op := r.Operation
	if op == "" {
		op = "change"
	}
	who := r.Requester
	if who == "" {
		who = "unknown requester"
	}
	fmt.Fprintf(&b, "%s by %s", op, who)
	if r.Message != "" {
		b.WriteString(": ")
		b.WriteString(r.Message)
	}
	for _, e := range r.Entries {
		if b.Len() > MaxNoteBytes {
			break // cut below; looking further costs without showing more
		}
		if e == "" || strings.Contains(r.Message, e) {
			continue // the admission messages already list their findings
		}
		b.WriteString("\n- ")
		b.WriteString(e)
	}
	return truncate(b.String(), MaxNoteBytes)
}

// bounded returns r within the log line's bounds: at most MaxEntries
// entries (the last saying how many more there were), each and the
// requester cut to MaxFieldBytes, the message to MaxMessageBytes.
func bounded(r Record) Record {
	entries, omitted := textcap.List(len(r.Entries), func(i int) string { return r.Entries[i] },
		MaxEntries, MaxFieldBytes, 0, MaxEntries*MaxFieldBytes)
	if omitted > 0 {
		entries = append(entries, fmt.Sprintf("... and %d more entries", omitted))
	}
	if r.Entries != nil && entries == nil {
		entries = []string{}
	}
	r.Entries = entries
	r.Requester = textcap.Clip(r.Requester, MaxFieldBytes)
	r.Message = textcap.Clip(r.Message, MaxMessageBytes)
	return r
}

// truncate cuts s to at most max bytes, without splitting a UTF-8
// sequence, ending in " …[N" and TruncationMarker when cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	// Sized for the largest count; the count written is never longer.
	cut := max - len(fmt.Sprintf(" …[%d%s", len(s), TruncationMarker))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s …[%d%s", s[:cut], len(s)-cut, TruncationMarker)
}

func entriesOrEmpty(e []string) []string {
	if e == nil {
		return []string{}
	}
	return e
}
