package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The handlers served the way the server serves them: controller-runtime's
// webhook.Admission as an http.Handler. Whatever arrives, the answer is a
// 4xx-style denial (HTTP 200 with allowed=false and a 4xx code in
// response.status.code, or an HTTP 4xx), never a panic or a 5xx.

func serve(t *testing.T, h admission.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(&webhook.Admission{Handler: h})
	t.Cleanup(srv.Close)
	return srv
}

// post sends body and returns the HTTP status and the decoded review.
func post(t *testing.T, url, contentType string, body io.Reader) (int, *admissionv1.AdmissionReview) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &ar); err != nil || ar.Response == nil {
		t.Fatalf("the answer is not an AdmissionReview (%v): %.300s", err, raw)
	}
	return resp.StatusCode, &ar
}

// assertClientError checks for a 4xx-style denial and returns the message.
func assertClientError(t *testing.T, status int, ar *admissionv1.AdmissionReview, wantCode int32) string {
	t.Helper()
	if status != http.StatusOK {
		if status < 400 || status >= 500 {
			t.Fatalf("HTTP %d, want 200 with a denial or a 4xx", status)
		}
		return ""
	}
	r := ar.Response
	if r.Allowed {
		t.Fatalf("allowed: %+v", r)
	}
	if r.Result == nil || r.Result.Code < 400 || r.Result.Code >= 500 {
		t.Fatalf("denied without a 4xx code: %+v", r.Result)
	}
	if wantCode != 0 && r.Result.Code != wantCode {
		t.Errorf("code %d, want %d (%s)", r.Result.Code, wantCode, r.Result.Message)
	}
	if r.Result.Message == "" {
		t.Errorf("denied without a message")
	}
	return r.Result.Message
}

func reviewJSON(t *testing.T, req admission.Request) []byte {
	t.Helper()
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostileAdmissionReviews(t *testing.T) {
	f := newFixture(t)
	secret := review(admissionv1.Create, []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"aws-auth","namespace":"kube-system"},"data":{"mapRoles":"LSB4"}}`), nil)
	secret.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}
	secret.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "secrets"}
	// Kind says ConfigMap, the object is something else.
	disguised := review(admissionv1.Create, []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"aws-auth","namespace":"kube-system"},"data":{"mapRoles":"LSB4"}}`), nil)
	notAnObject := review(admissionv1.Update, []byte(`["mapRoles"]`), nil)
	wrongTypes := review(admissionv1.Update, []byte(`{"apiVersion":"v1","kind":"ConfigMap","data":{"mapRoles":5}}`), nil)
	badOld := review(admissionv1.Update, configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles}), []byte(`"old"`))
	// A well-formed review of a ConfigMap over the size limit: the body is
	// under controller-runtime's limit, the data over the apiserver's.
	tooLarge := review(admissionv1.Update, configMap("kube-system", "aws-auth", map[string]string{
		"mapRoles": baseRoles, "notes": strings.Repeat("n", 1<<20)}), nil)
	withBinary, _ := json.Marshal(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data:       map[string]string{"mapRoles": baseRoles}, BinaryData: map[string][]byte{"blob": bytes.Repeat([]byte{0}, 1<<20)}})
	binaryTooLarge := review(admissionv1.Update, withBinary, nil)
	bomb := review(admissionv1.Update, configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + billionLaughs()}), nil)
	deep := review(admissionv1.Update, configMap("kube-system", "aws-auth", map[string]string{"mapRoles": strings.Repeat("[", 20000)}), nil)

	cases := []struct {
		name        string
		contentType string
		body        func() io.Reader
		code        int32 // 0: any 4xx
		mention     string
	}{
		{"not JSON", "application/json", func() io.Reader { return strings.NewReader("mapRoles: [") }, 400, ""},
		{"empty body", "application/json", func() io.Reader { return http.NoBody }, 400, "empty"},
		{"not JSON content", "application/yaml", func() io.Reader { return strings.NewReader("{}") }, 400, "application/json"},
		{"JSON, but not an AdmissionReview", "application/json", func() io.Reader { return strings.NewReader(`{"hello":"world"}`) }, 400, ""},
		{"a ConfigMap instead of a review", "application/json", func() io.Reader {
			return bytes.NewReader(configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles}))
		}, 400, ""},
		{"a review without a request", "application/json", func() io.Reader {
			return strings.NewReader(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)
		}, 400, ""},
		{"a JSON array", "application/json", func() io.Reader { return strings.NewReader(`[1, 2, 3]`) }, 400, ""},
		{"a Secret", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, secret)) }, 400, "only handles ConfigMaps"},
		{"an object that is not a ConfigMap", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, disguised)) }, 400, "not a ConfigMap"},
		{"an object that is a JSON array", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, notAnObject)) }, 400, "not a ConfigMap"},
		{"data of the wrong type", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, wrongTypes)) }, 400, "not a ConfigMap"},
		{"an oldObject that is not a ConfigMap", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, badOld)) }, 400, "oldObject"},
		// controller-runtime reads at most 7 MiB and answers 413 in the review.
		{"an oversized body", "application/json", func() io.Reader { return io.LimitReader(zeros{}, 8<<20) }, 413, "too large"},
		{"a ConfigMap over 1 MiB", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, tooLarge)) }, 403, "at most 1048576"},
		{"binaryData over 1 MiB", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, binaryTooLarge)) }, 403, "at most 1048576"},
		{"an alias bomb", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, bomb)) }, 403, "excessive aliasing"},
		{"deep nesting", "application/json", func() io.Reader { return bytes.NewReader(reviewJSON(t, deep)) }, 403, "mapRoles is not valid YAML"},
	}
	for _, h := range []struct {
		name    string
		handler admission.Handler
	}{{"mutate", f.h.Mutator()}, {"validate", f.h.Validator()}} {
		srv := serve(t, h.handler)
		for _, tc := range cases {
			t.Run(h.name+"/"+tc.name, func(t *testing.T) {
				status, ar := post(t, srv.URL, tc.contentType, tc.body())
				msg := assertClientError(t, status, ar, tc.code)
				if tc.mention != "" && !strings.Contains(msg, tc.mention) {
					t.Errorf("the message does not mention %q: %s", tc.mention, msg)
				}
			})
		}
	}
}

// TestObjectKindIsChecked: an object whose kind is not v1 ConfigMap is
// refused, even when the review says ConfigMap; before, a Secret's data
// was rendered as if it were aws-auth (and patched).
func TestObjectKindIsChecked(t *testing.T) {
	f := newFixture(t)
	for _, raw := range []string{
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"aws-auth","namespace":"kube-system"}}`,
		`{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"aws-auth","namespace":"kube-system"}}`,
	} {
		req := review(admissionv1.Create, []byte(raw), nil)
		for _, h := range []admission.Handler{f.h.Mutator(), f.h.Validator()} {
			resp := h.Handle(context.Background(), req)
			if resp.Allowed || resp.Result.Code != 400 || len(resp.Patches) != 0 {
				t.Errorf("%s: allowed=%v result=%+v patches=%v", raw, resp.Allowed, resp.Result, resp.Patches)
			}
		}
	}
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// billionLaughs is an alias bomb appended to a mapRoles entry.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("  x0: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	prev := "a"
	for i := 1; i <= 9; i++ {
		name := string(rune('a' + i))
		fmt.Fprintf(&b, "  x%d: &%s [%s]\n", i, name, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 9), ", "))
		prev = name
	}
	return b.String()
}
