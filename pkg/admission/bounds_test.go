package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/hostile"
)

// noteRecorder keeps the notes of the Events the auditor emits.
type noteRecorder struct {
	mu    sync.Mutex
	notes []string
}

func (r *noteRecorder) Eventf(_, _ k8sruntime.Object, _, _, _, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(note, args...))
}

func (r *noteRecorder) AnnotatedEventf(regarding, related k8sruntime.Object, _ map[string]string, eventtype, reason, action, note string, args ...any) {
	r.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

// withAudit gives f's handlers an auditor whose Events and log lines the
// test reads.
func (f *fixture) withAudit() (*noteRecorder, *[]string) {
	rec := &noteRecorder{}
	var mu sync.Mutex
	var lines []string
	log := funcr.NewJSON(func(obj string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, obj)
	}, funcr.Options{})
	f.h = New(f.h.cfg, f.h.resolver, audit.New(rec, log, prometheus.NewRegistry()), logr.Discard())
	return rec, &lines
}

var moreProblems = regexp.MustCompile(`\n- \.\.\. and (\d+) more problem\(s\); ` + "`aws-auth-webhook lint -o json`" + ` lists them all$`)

// TestDenialIsBounded: the hostile shapes that draw thousands of errors
// are denied with a message of at most MaxMessageBytes listing the first
// errors, in order, and how many more there are; the audit log line and
// the Event note are bounded too.
func TestDenialIsBounded(t *testing.T) {
	shapes := map[string]map[string]string{}
	for _, s := range hostile.Shapes() {
		shapes[s.Name] = s.Data
	}
	for _, tc := range []struct {
		shape string
		total int // errors the engine keeps (it stops reading at MaxFindings)
		first string
	}{
		{"empty-entries-100KB", awsauth.MaxFindings + 1, "mapRoles[0], line 1 of mapRoles: entry 0 is empty"},
		{"long-values-in-findings", -1, "mapRoles[0] (rolearn arn:aws:iam::111122223333:role/rrrr"},
		{"every-finding-kind", -1, "mapRoles[11], line 25 of mapRoles: entry 11 is empty"},
	} {
		t.Run(tc.shape, func(t *testing.T) {
			f := newFixture(t)
			rec, lines := f.withAudit()
			data := shapes[tc.shape]
			errs := awsauth.LintWithOptions(data, awsauth.Options{}).Findings.Errors()
			if tc.total >= 0 && len(errs) != tc.total {
				t.Fatalf("the engine finds %d errors, want %d", len(errs), tc.total)
			}
			resp := f.h.Validator().Handle(context.Background(), review(admissionv1.Create, configMap("kube-system", "aws-auth", data), nil))
			if resp.Allowed {
				t.Fatal("allowed")
			}
			msg := resp.Result.Message
			if len(msg) > MaxMessageBytes {
				t.Errorf("message of %d bytes, over %d", len(msg), MaxMessageBytes)
			}
			head := fmt.Sprintf("aws-auth was not changed: %d problem(s) would drop or break mappings:\n- ", len(errs))
			if !strings.HasPrefix(msg, head+tc.first) {
				t.Fatalf("message starts %.300q, want %q", msg, head+tc.first)
			}
			m := moreProblems.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("the message does not say how many more problems there are; it ends %q", msg[len(msg)-200:])
			}
			listed := strings.Split(strings.TrimPrefix(moreProblems.ReplaceAllString(msg, ""), head), "\n- ")
			if more, _ := strconv.Atoi(m[1]); len(listed)+more != len(errs) || len(listed) > awsauth.MaxListedFindings || len(listed) < 10 {
				t.Errorf("%d listed and %d more, of %d errors", len(listed), more, len(errs))
			}
			for i, l := range listed {
				if len(l) > awsauth.MaxFindingBytes {
					t.Errorf("line %d is %d bytes", i, len(l))
				}
				if want := errs[i].String(); l != want && !(strings.HasSuffix(l, "bytes cut]") && strings.HasPrefix(want, l[:strings.LastIndex(l, " …[")])) {
					t.Errorf("line %d is %.200q, want finding %d: %.200q", i, l, i, want)
				}
			}

			if len(*lines) != 1 {
				t.Fatalf("%d audit log lines", len(*lines))
			}
			line := (*lines)[0]
			var rec0 struct {
				Entries []string `json:"entries"`
				Message string   `json:"message"`
			}
			if err := json.Unmarshal([]byte(line), &rec0); err != nil {
				t.Fatal(err)
			}
			if len(rec0.Entries) != len(listed)+1 || rec0.Message != msg {
				t.Errorf("the audit record holds %d entries (want the %d listed and the count of more) and a message of %d bytes", len(rec0.Entries), len(listed), len(rec0.Message))
			}
			if max := 2*MaxMessageBytes + 4<<10; len(line) > max {
				t.Errorf("audit log line of %d bytes, over %d", len(line), max)
			}
			if len(rec.notes) != 1 || len(rec.notes[0]) > audit.MaxNoteBytes {
				t.Errorf("Event notes: %d, the first %d bytes", len(rec.notes), len(rec.notes[0]))
			}
		})
	}
}

// TestWarningsAreBounded: an edit that draws hundreds of warnings is
// admitted with warnings inside the apiserver's budget, the first in the
// engine's order and the last saying how many more there are.
func TestWarningsAreBounded(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	b.WriteString(baseRoles)
	for i := range 500 { // no username: a MissingUsername warning each
		fmt.Fprintf(&b, "- rolearn: arn:aws:iam::111122223333:role/r%d\n", i)
	}
	data := map[string]string{"mapRoles": b.String()}
	res, err := awsauth.Render(context.Background(), data, f.h.resolver, awsauth.Options{NodeRoleARNs: f.h.cfg.NodeRoleARNs})
	if err != nil || res.Findings.HasErrors() {
		t.Fatalf("render: %v %v", err, res.Findings.Errors().Strings())
	}
	warns := res.Findings.Warnings()
	if len(warns) < 500 {
		t.Fatalf("%d warnings", len(warns))
	}

	resp := f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, configMap("kube-system", "aws-auth", data), configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})))
	if !resp.Allowed {
		t.Fatalf("denied: %s", resp.Result.Message)
	}
	total := 0
	for _, w := range resp.Warnings {
		total += len(w)
	}
	if total > MaxWarningBytes || len(resp.Warnings) > awsauth.MaxListedFindings+1 {
		t.Errorf("%d warnings of %d bytes in all, over %d", len(resp.Warnings), total, MaxWarningBytes)
	}
	shown := resp.Warnings[:len(resp.Warnings)-1]
	for i, w := range shown {
		if want := "aws-auth: " + warns[i].String(); w != want {
			t.Errorf("warning %d is %q, want %q", i, w, want)
		}
	}
	want := fmt.Sprintf("aws-auth: ... and %d more warning(s); `aws-auth-webhook lint -o json` lists them all", len(warns)-len(shown))
	if last := resp.Warnings[len(resp.Warnings)-1]; last != want || len(shown) < 5 {
		t.Errorf("%d shown, the last warning %q, want %q", len(shown), last, want)
	}
}

// BenchmarkHostileValidate is the validating webhook's answer to each
// hostile shape (pkg/hostile), created as a new aws-auth: the engine, the
// denial message and the audit record. msgbytes/op is the message size.
func BenchmarkHostileValidate(b *testing.B) {
	f := newFixture(b)
	rec, _ := f.withAudit()
	for _, s := range hostile.Shapes() {
		req := review(admissionv1.Create, configMap("kube-system", "aws-auth", s.Data), nil)
		b.Run(s.Name, func(b *testing.B) {
			b.ReportAllocs()
			var msg int
			for b.Loop() {
				resp := f.h.Validator().Handle(context.Background(), req)
				msg = 0
				if resp.Result != nil {
					msg = len(resp.Result.Message)
				}
				rec.mu.Lock()
				rec.notes = rec.notes[:0]
				rec.mu.Unlock()
			}
			b.ReportMetric(float64(msg), "msgbytes/op")
		})
	}
}
