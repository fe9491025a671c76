package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TLS of the webhook server. The only legitimate client is kube-apiserver
// (a Go client offering TLS 1.3 and ECDHE+AEAD suites), so nothing older or
// weaker is needed: TLS 1.2 is the floor, and under TLS 1.2 only forward-
// secret AEAD suites are accepted. Go's defaults would also accept the
// ECDHE CBC-SHA1 suites; RSA key exchange, 3DES and RC4 are refused either
// way. TLS 1.3 suites are all AEAD and not configurable.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLS12CipherSuites returns the suites the webhook accepts under TLS 1.2.
func TLS12CipherSuites() []uint16 { return append([]uint16(nil), tls12CipherSuites...) }

// hardenTLS is the webhook server's TLS option (controller-runtime applies
// it to its default config, which keeps the certificate watcher).
func hardenTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = TLS12CipherSuites()
	c.NextProtos = []string{"http/1.1"} // no HTTP/2: rapid-reset hardening
}

// Request limits of /mutate and /validate.
const (
	// MaxRequestBodyBytes is the largest AdmissionReview read. An
	// AdmissionReview of aws-auth holds the object and the old object, each
	// at most 1 MiB of data (the ConfigMap limit) plus metadata, JSON-escaped
	// by the apiserver; 7 MiB is controller-runtime's own bound for two
	// objects of any kind, and what it enforces after reading. Checked here
	// first, from Content-Length, so an oversized body is refused without
	// being read.
	MaxRequestBodyBytes = 7 << 20
	// maxInFlightBodyBytes bounds the request bytes being read and decoded
	// at once. controller-runtime buffers a whole body (growing the buffer
	// as it reads) and decoding takes about as much again: measured with
	// the binary, twelve concurrent 64 MiB bodies (anyone who can reach
	// the pod can send them) took it from 35 to 154 MiB of RSS, over the
	// chart's 128Mi limit; with this budget the peak stays well below
	// (e2e/security_test.go). Legitimate requests are a few KiB; beyond
	// the budget, requests wait for their turn until their deadline.
	maxInFlightBodyBytes = 2 * MaxRequestBodyBytes
	// defaultAdmissionTimeout is the apiserver's default webhook timeout,
	// assumed when a request does not say its own.
	defaultAdmissionTimeout = 10 * time.Second
)

// admissionGuard wraps the admission handlers:
//
//   - a deadline: the apiserver passes the webhook's timeoutSeconds as the
//     `timeout` query parameter and gives up after it. The handler gets
//     three quarters of it, so that a lookup that hangs (IAM not answering)
//     ends in our own answer ("IAM is unavailable, nothing was changed")
//     rather than in the apiserver's "context deadline exceeded";
//   - a body limit: Content-Length above MaxRequestBodyBytes is refused
//     with 413 before reading; a body without a length is cut at the limit;
//   - a memory budget for bodies in flight (maxInFlightBodyBytes);
//   - a read deadline, so a body trickled in slowly cannot hold its share
//     of the budget past the request's deadline.
type admissionGuard struct {
	next   http.Handler
	budget *semaphore.Weighted
	idle   *idleTrimmer // told of every admission; may be nil
}

func newAdmissionGuard(next http.Handler, budget *semaphore.Weighted, idle *idleTrimmer) http.Handler {
	return &admissionGuard{next: next, budget: budget, idle: idle}
}

func (g *admissionGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.idle != nil {
		defer g.idle.touch()
	}
	deadline := time.Now().Add(handlerBudget(r))
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	if r.ContentLength > MaxRequestBodyBytes {
		writeRefusal(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request entity is too large: %d bytes, the limit is %d", r.ContentLength, MaxRequestBodyBytes))
		return
	}
	weight := r.ContentLength
	if weight < 0 { // unknown length: it may use the whole limit
		weight = MaxRequestBodyBytes
	}
	if err := g.budget.Acquire(ctx, weight); err != nil {
		writeRefusal(w, http.StatusTooManyRequests,
			"too many large admission requests in flight; try again: "+err.Error())
		return
	}
	defer g.budget.Release(weight)
	// Not every ResponseWriter supports deadlines (httptest's does); the
	// server's does.
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBodyBytes)
	g.next.ServeHTTP(w, r.WithContext(ctx))
}

// handlerBudget is how long the handler may take: three quarters of the
// timeout the apiserver sent (?timeout=5s), or of its default.
func handlerBudget(r *http.Request) time.Duration {
	timeout := defaultAdmissionTimeout
	if s := r.URL.Query().Get("timeout"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			timeout = d
		}
	}
	return timeout * 3 / 4
}

// writeRefusal answers with an HTTP error status and, for callers that read
// the body, an AdmissionReview saying the same (the request's uid is
// unknown: its body was not read).
func writeRefusal(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{
			Allowed: false,
			Result:  &metav1.Status{Status: metav1.StatusFailure, Code: int32(code), Message: msg},
		},
	})
}
