package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// event is one call to the recorder, with the note formatted.
type event struct {
	regarding         *corev1.ConfigMap
	related           runtime.Object
	eventtype, reason string
	action, note      string
	annotations       map[string]string
	formatWasVerbatim bool // the note arrived as an argument, not as a format
}

// fakeRecorder records what it is asked to emit; the e2e proves real Events.
type fakeRecorder struct {
	mu     sync.Mutex
	events []event
}

var _ recorder.EventRecorder = (*fakeRecorder)(nil)

func (f *fakeRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	f.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

func (f *fakeRecorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cm, _ := regarding.(*corev1.ConfigMap)
	f.events = append(f.events, event{regarding: cm, related: related, eventtype: eventtype, reason: reason,
		action: action, note: fmt.Sprintf(note, args...), annotations: annotations,
		formatWasVerbatim: note == "%s" && len(args) == 1})
}

// logSink captures funcr JSON lines.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *logSink) logger(t *testing.T) logr.Logger {
	return funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, obj)
			return
		}
		s.mu.Lock()
		s.lines = append(s.lines, m)
		s.mu.Unlock()
	}, funcr.Options{})
}

func counterValue(t *testing.T, reg *prometheus.Registry, action, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "aws_auth_webhook_audit_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m)["action"] == action && labels(m)["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

var awsAuth = types.NamespacedName{Namespace: "kube-system", Name: "aws-auth"}

func TestRecordRejected(t *testing.T) {
	rec := &fakeRecorder{}
	sink := &logSink{}
	reg := prometheus.NewRegistry()
	a := New(rec, sink.logger(t), reg)

	r := Record{
		Action:    ActionRejected,
		Reason:    "DuplicateARN",
		Operation: "UPDATE",
		Requester: "alice (arn:aws:iam::111122223333:role/ops)",
		Object:    awsAuth,
		UID:       "0f1e2d3c",
		Entries: []string{
			"mapRoles[1] (permissionset Admin): duplicate of mapRoles[0]",
			"mapRoles[2]: 100% broken", // a '%' must reach the note verbatim
		},
		Message: "aws-auth was not changed: 1 problem(s):\n- mapRoles[1] (permissionset Admin): duplicate of mapRoles[0]",
	}
	a.Record(context.Background(), r)
	a.Record(context.Background(), r)

	if len(rec.events) != 2 {
		t.Fatalf("%d events, want 2", len(rec.events))
	}
	ev := rec.events[0]
	if ev.eventtype != corev1.EventTypeWarning || ev.reason != "DuplicateARN" || ev.action != "Rejected" {
		t.Errorf("event type/reason/action = %s/%s/%s, want Warning/DuplicateARN/Rejected", ev.eventtype, ev.reason, ev.action)
	}
	if !ev.formatWasVerbatim {
		t.Errorf("the note must be passed as an argument of %%s, not as a format string")
	}
	if ev.regarding == nil || ev.regarding.Namespace != "kube-system" || ev.regarding.Name != "aws-auth" ||
		ev.regarding.UID != "0f1e2d3c" || ev.regarding.Kind != "ConfigMap" || ev.regarding.APIVersion != "v1" {
		t.Errorf("regarding = %#v, want the v1 ConfigMap kube-system/aws-auth with its UID", ev.regarding)
	}
	if ev.related != nil {
		t.Errorf("related = %v, want nil", ev.related)
	}
	wantNote := "UPDATE by alice (arn:aws:iam::111122223333:role/ops): aws-auth was not changed: 1 problem(s):\n" +
		"- mapRoles[1] (permissionset Admin): duplicate of mapRoles[0]\n" + // from the message; not repeated
		"- mapRoles[2]: 100% broken"
	if ev.note != wantNote {
		t.Errorf("note:\n%s\nwant:\n%s", ev.note, wantNote)
	}

	if got := counterValue(t, reg, "Rejected", "DuplicateARN"); got != 2 {
		t.Errorf("counter{Rejected,DuplicateARN} = %v, want 2", got)
	}

	if len(sink.lines) != 2 {
		t.Fatalf("%d log lines, want 2: %v", len(sink.lines), sink.lines)
	}
	line := sink.lines[0]
	for k, want := range map[string]any{
		"action":    "Rejected",
		"reason":    "DuplicateARN",
		"operation": "UPDATE",
		"requester": "alice (arn:aws:iam::111122223333:role/ops)",
		"object":    "kube-system/aws-auth",
		"uid":       "0f1e2d3c",
		"message":   r.Message,
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	entries, _ := line["entries"].([]any)
	if len(entries) != 2 || entries[1] != "mapRoles[2]: 100% broken" {
		t.Errorf("log entries = %v, want both entries", line["entries"])
	}
}

func TestEventTypes(t *testing.T) {
	for action, want := range map[Action]string{
		ActionRejected:         corev1.EventTypeWarning,
		ActionBreakGlass:       corev1.EventTypeWarning,
		ActionResyncRewrite:    corev1.EventTypeNormal,
		ActionResyncUnresolved: corev1.EventTypeWarning,
		ActionResyncFailed:     corev1.EventTypeWarning,
		ActionRepaired:         corev1.EventTypeWarning,
	} {
		rec := &fakeRecorder{}
		reg := prometheus.NewRegistry()
		New(rec, logr.Discard(), reg).Record(context.Background(), Record{
			Action: action, Reason: "SomeReason", Operation: OperationResync, Requester: "resync", Object: awsAuth,
		})
		if len(rec.events) != 1 || rec.events[0].eventtype != want || rec.events[0].action != string(action) {
			t.Errorf("%s: events %+v, want one %s", action, rec.events, want)
		}
		if got := counterValue(t, reg, string(action), "SomeReason"); got != 1 {
			t.Errorf("%s: counter = %v, want 1", action, got)
		}
	}
}

func TestNoteTruncated(t *testing.T) {
	rec := &fakeRecorder{}
	a := New(rec, logr.Discard(), nil)
	var entries []string
	for i := range 100 {
		entries = append(entries, fmt.Sprintf("mapRoles[%d] (permissionset Pêrmission%d): the permission set has no role — é", i, i))
	}
	r := Record{Action: ActionResyncUnresolved, Reason: "PermissionSetUnresolved", Operation: OperationResync,
		Requester: "resync loop", Object: awsAuth, Entries: entries, Message: "kept the last ARN"}
	a.Record(context.Background(), r)

	note := rec.events[0].note
	if len(note) > MaxNoteBytes {
		t.Errorf("note is %d bytes, over the API limit %d", len(note), MaxNoteBytes)
	}
	if !strings.HasSuffix(note, TruncationMarker) {
		t.Errorf("a cut note must end with the marker; ends %q", note[len(note)-60:])
	}
	if !utf8.ValidString(note) {
		t.Errorf("the note was cut inside a UTF-8 sequence")
	}
	if !strings.HasPrefix(note, "RESYNC by resync loop: kept the last ARN\n- mapRoles[0]") {
		t.Errorf("note starts %q", note[:80])
	}

	// Exactly at the limit: not cut. One byte over: cut.
	for _, extra := range []int{0, 1} {
		base := Note(Record{Operation: "DELETE", Requester: "bob"})
		msg := strings.Repeat("x", MaxNoteBytes-len(base)-len(": ")+extra)
		got := Note(Record{Operation: "DELETE", Requester: "bob", Message: msg})
		if cut := strings.HasSuffix(got, TruncationMarker); cut != (extra == 1) || len(got) > MaxNoteBytes {
			t.Errorf("message of %d bytes over the limit: cut=%v len=%d", extra, cut, len(got))
		}
	}

	// Cutting on every possible byte boundary of multi-byte text stays valid.
	text := strings.Repeat("é€😀", 200)
	for limit := 290; limit < 300; limit++ {
		s := truncate(text, limit)
		if !utf8.ValidString(s) || len(s) > limit || !strings.HasSuffix(s, TruncationMarker) {
			t.Errorf("limit %d: invalid, long or unmarked cut (%d bytes)", limit, len(s))
		}
	}
}

func TestEventReason(t *testing.T) {
	for in, want := range map[string]string{
		"DuplicateARN":           "DuplicateARN",
		"LockoutSelf":            "LockoutSelf",
		"lockout-self":           "LockoutSelf",
		"delete refused":         "DeleteRefused",
		"":                       "Rejected",
		"42":                     "Rejected42",
		"%%%":                    "Rejected",
		"Bad:Reason":             "BadReason",
		strings.Repeat("A", 200): strings.Repeat("A", 128),
	} {
		if got := EventReason(in, ActionRejected); got != want {
			t.Errorf("EventReason(%q) = %q, want %q", in, got, want)
		}
	}
	// The metric uses the same reason as the Event.
	rec := &fakeRecorder{}
	reg := prometheus.NewRegistry()
	New(rec, logr.Discard(), reg).Record(context.Background(), Record{Action: ActionRejected, Reason: "lockout-self", Object: awsAuth})
	if rec.events[0].reason != "LockoutSelf" || counterValue(t, reg, "Rejected", "LockoutSelf") != 1 {
		t.Errorf("reason %q, counter %v", rec.events[0].reason, counterValue(t, reg, "Rejected", "LockoutSelf"))
	}
}

func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a1 := New(nil, logr.Discard(), reg) // a nil recorder emits no Events
	a2 := New(&fakeRecorder{}, logr.Discard(), reg)
	a1.Record(context.Background(), Record{Action: ActionBreakGlass, Reason: "LockoutSelf", Object: awsAuth})
	a2.Record(context.Background(), Record{Action: ActionBreakGlass, Reason: "LockoutSelf", Object: awsAuth})
	if got := counterValue(t, reg, "BreakGlass", "LockoutSelf"); got != 2 {
		t.Errorf("two auditors on one registry share the counter: got %v, want 2", got)
	}

	// A different metric under the same name is a programming error.
	defer func() {
		if recover() == nil {
			t.Errorf("registering a conflicting collector must panic")
		}
	}()
	Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "aws_auth_webhook_audit_events_total", Help: "other"}))
}

func TestNilAuditor(t *testing.T) {
	var a *Auditor
	a.Record(context.Background(), Record{Action: ActionRejected}) // must not panic
}

// TestRecordBounded: a rejection of a hostile aws-auth (tens of thousands
// of findings, each quoting a long value) logs a bounded line and a note
// within the API's limit, both saying what they left out.
func TestRecordBounded(t *testing.T) {
	rec := &fakeRecorder{}
	sink := &logSink{}
	a := New(rec, sink.logger(t), nil)
	var entries []string
	for i := range 50000 {
		entries = append(entries, fmt.Sprintf("mapRoles[%d]: %s", i, strings.Repeat("é", 2000)))
	}
	a.Record(context.Background(), Record{Action: ActionRejected, Reason: "InvalidARN", Operation: "UPDATE",
		Requester: strings.Repeat("r", 5000), Object: awsAuth, Entries: entries, Message: strings.Repeat("m", 1<<20)})

	if len(sink.lines) != 1 {
		t.Fatalf("%d log lines", len(sink.lines))
	}
	line := sink.lines[0]
	logged, _ := line["entries"].([]any)
	if len(logged) != MaxEntries+1 {
		t.Fatalf("%d entries logged, want %d and one saying how many more", len(logged), MaxEntries)
	}
	for i, e := range logged[:MaxEntries] {
		s := e.(string)
		if len(s) > MaxFieldBytes || !utf8.ValidString(s) || !strings.HasPrefix(s, fmt.Sprintf("mapRoles[%d]: é", i)) || !strings.HasSuffix(s, "bytes cut]") {
			t.Fatalf("entry %d: %d bytes, starts %.20q, ends %q", i, len(s), s, s[len(s)-20:])
		}
	}
	if last := logged[MaxEntries].(string); last != "... and 49900 more entries" {
		t.Errorf("last entry %q", last)
	}
	msg := line["message"].(string)
	if len(msg) > MaxMessageBytes || !strings.HasSuffix(msg, fmt.Sprintf(" …[%d bytes cut]", 1<<20-(MaxMessageBytes-len(" …[1048576 bytes cut]")))) {
		t.Errorf("message: %d bytes, ends %q", len(msg), msg[len(msg)-30:])
	}
	if r := line["requester"].(string); len(r) > MaxFieldBytes || !strings.HasSuffix(r, "bytes cut]") {
		t.Errorf("requester: %d bytes", len(r))
	}
	note := rec.events[0].note
	if len(note) > MaxNoteBytes || !strings.HasSuffix(note, TruncationMarker) {
		t.Errorf("note: %d bytes, ends %q", len(note), note[len(note)-60:])
	}
}
