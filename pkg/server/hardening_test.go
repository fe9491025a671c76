package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// tlsServer serves 200 OK behind hardenTLS (with httptest's RSA certificate).
func tlsServer(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	ts.TLS = &tls.Config{}
	hardenTLS(ts.TLS)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func handshake(ts *httptest.Server, cfg *tls.Config) (tls.ConnectionState, error) {
	cfg.InsecureSkipVerify = true // the certificate is not what these tests are about
	conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

func TestTLSVersions(t *testing.T) {
	ts := tlsServer(t)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := handshake(ts, &tls.Config{MinVersion: v, MaxVersion: v})
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s: handshake error %v, want a protocol version alert", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		st, err := handshake(ts, &tls.Config{MinVersion: v, MaxVersion: v})
		if err != nil || st.Version != v {
			t.Errorf("%s: %v (negotiated %s)", tls.VersionName(v), err, tls.VersionName(st.Version))
		}
	}
	// A client offering everything gets TLS 1.3 and HTTP/1.1 at most.
	st, err := handshake(ts, &tls.Config{NextProtos: []string{"h2", "http/1.1"}})
	if err != nil || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "http/1.1" {
		t.Errorf("default client: %v, version %s, ALPN %q", err, tls.VersionName(st.Version), st.NegotiatedProtocol)
	}
}

// TestTLS12CipherSuites offers every suite Go implements, secure or not, one
// at a time under TLS 1.2: only the forward-secret AEAD ones are accepted
// (the RSA ones here, the certificate being RSA).
func TestTLS12CipherSuites(t *testing.T) {
	ts := tlsServer(t)
	var accepted []string
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		if _, err := handshake(ts, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}}); err == nil {
			accepted = append(accepted, cs.Name)
		}
	}
	want := []string{
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	}
	slices.Sort(accepted)
	if !slices.Equal(accepted, want) {
		t.Errorf("TLS 1.2 suites accepted: %v, want %v", accepted, want)
	}
	for _, id := range TLS12CipherSuites() {
		name := tls.CipherSuiteName(id)
		if !strings.Contains(name, "ECDHE") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("configured suite %s is not forward-secret AEAD", name)
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// onlyReader hides Len, so that http.NewRequest cannot know the length.
type onlyReader struct{ io.Reader }

func allowAll() http.Handler {
	return &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
}

func review(t *testing.T, body io.Reader) admissionv1.AdmissionReview {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(body).Decode(&ar); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v", err)
	}
	if ar.Response == nil {
		t.Fatal("AdmissionReview without a response")
	}
	return ar
}

func TestAdmissionGuardRefusesOversizedBodyUnread(t *testing.T) {
	var called atomic.Bool
	inner := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) })
	h := newAdmissionGuard(inner, semaphore.NewWeighted(maxInFlightBodyBytes), nil)
	body := &countingReader{r: io.LimitReader(zeros{}, 64<<20)}
	req := httptest.NewRequest(http.MethodPost, "/mutate", body)
	req.ContentLength = 64 << 20
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", rec.Code)
	}
	if called.Load() {
		t.Error("the admission handler ran")
	}
	if n := body.n.Load(); n != 0 {
		t.Errorf("%d bytes of the body were read", n)
	}
	ar := review(t, rec.Body)
	if ar.Response.Allowed || ar.Response.Result.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("response %+v", ar.Response)
	}
}

func TestAdmissionGuardCutsBodyOfUnknownLength(t *testing.T) {
	ts := httptest.NewServer(newAdmissionGuard(allowAll(), semaphore.NewWeighted(maxInFlightBodyBytes), nil))
	defer ts.Close()
	body := &countingReader{r: io.LimitReader(zeros{}, 64<<20)}
	req, err := http.NewRequest(http.MethodPost, ts.URL, onlyReader{body})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may close the connection while the rest of the body is
		// still being sent.
		t.Logf("client: %v", err)
	} else {
		defer resp.Body.Close()
		ar := review(t, resp.Body)
		if ar.Response.Allowed || ar.Response.Result.Code < 400 || ar.Response.Result.Code > 499 {
			t.Errorf("a 64 MiB body of unknown length: %+v", ar.Response.Result)
		}
	}
	if n := body.n.Load(); n > 2*MaxRequestBodyBytes {
		t.Errorf("%d bytes were sent before the server refused; the limit is %d", n, MaxRequestBodyBytes)
	}
}

func TestAdmissionGuardAdmitsLegitimateSize(t *testing.T) {
	// An UPDATE of an aws-auth at the ConfigMap limit: two 1 MiB objects.
	data := strings.Repeat("- rolearn: arn:aws:iam::111122223333:role/r\n  username: u\n", (1<<20)/60)
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "aws-auth", "namespace": "kube-system"}, "data": map[string]string{"mapRoles": data}}
	raw, _ := json.Marshal(cm)
	ar := map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": map[string]any{
		"uid": "1", "kind": map[string]string{"version": "v1", "kind": "ConfigMap"}, "operation": "UPDATE",
		"name": "aws-auth", "namespace": "kube-system", "object": json.RawMessage(raw), "oldObject": json.RawMessage(raw)}}
	body, _ := json.Marshal(ar)
	if len(body) < 2<<20 {
		t.Fatalf("the test body is only %d bytes", len(body))
	}
	ts := httptest.NewServer(newAdmissionGuard(allowAll(), semaphore.NewWeighted(maxInFlightBodyBytes), nil))
	defer ts.Close()
	resp, err := http.Post(ts.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := review(t, resp.Body); !got.Response.Allowed || got.Response.UID != "1" {
		t.Errorf("a %d-byte AdmissionReview: %+v", len(body), got.Response)
	}
}

func TestAdmissionGuardDeadlineFromTimeoutParameter(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
	}{
		{"?timeout=5s", 3750 * time.Millisecond},
		{"?timeout=1s", 750 * time.Millisecond},
		{"", 7500 * time.Millisecond},
		{"?timeout=bogus", 7500 * time.Millisecond},
	} {
		var deadline time.Time
		inner := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			d, ok := r.Context().Deadline()
			if !ok {
				t.Errorf("%q: no deadline", tc.query)
			}
			deadline = d
		})
		before := time.Now()
		newAdmissionGuard(inner, semaphore.NewWeighted(1), nil).ServeHTTP(httptest.NewRecorder(),
			httptest.NewRequest(http.MethodPost, "/mutate"+tc.query, nil))
		after := time.Now()
		// The deadline was set between before and after, want from then.
		if deadline.Before(before.Add(tc.want)) || deadline.After(after.Add(tc.want)) {
			t.Errorf("%q: the handler's deadline is %v after the request, want %v", tc.query, deadline.Sub(before), tc.want)
		}
	}
}

// TestAdmissionGuardBoundsBodiesInFlight: with a budget of two bodies of
// unknown length, a third waits, and is refused with 429 when its request
// ends (its deadline passed) while the two hold the budget. Nothing here
// waits on the wall clock: the handlers say when they are in, and the third
// request's deadline has already passed.
func TestAdmissionGuardBoundsBodiesInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var inFlight, peak atomic.Int32
	inner := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		inFlight.Add(-1)
	})
	h := newAdmissionGuard(inner, semaphore.NewWeighted(2*MaxRequestBodyBytes), nil)
	unknownLength := func(ctx context.Context) *http.Request {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/mutate?timeout=1m", onlyReader{strings.NewReader("{}")})
		r.ContentLength = -1
		return r
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), unknownLength(context.Background())) })
	}
	<-entered
	<-entered
	ended, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, unknownLength(ended))
	close(release)
	wg.Wait()
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("the third body: status %d, want 429", rec.Code)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("%d bodies in flight at once, want 2", p)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
