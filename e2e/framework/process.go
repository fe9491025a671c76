//go:build e2e

package framework

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Kill ends the process with SIGKILL, as a node failure or an OOM kill
// would: no shutdown, no Lease released. Stop does nothing afterwards.
func (w *WebhookProcess) Kill(t testing.TB) {
	t.Helper()
	w.stopOnce.Do(func() {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("aws-auth-webhook serve (pid %d) still runs 10s after SIGKILL", w.cmd.Process.Pid)
		}
	})
}

// PeakRSS is the process's peak resident set size so far (VmHWM), in bytes.
func (w *WebhookProcess) PeakRSS(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the webhook's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", w.cmd.Process.Pid)
	return 0
}

// Addr is host:port of the webhook's HTTPS port.
func (w *WebhookProcess) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(w.Port)) }

// AdmissionClient is an HTTPS client for the webhook port that trusts the
// PEM CA bundle caPEM. With fresh, every request opens a new connection
// (a new TLS handshake), as a client after a certificate change would.
func AdmissionClient(t testing.TB, caPEM []byte, fresh bool) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("AdmissionClient: the CA bundle holds no PEM certificate")
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: fresh,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// AdmissionReview builds the AdmissionReview the apiserver would send for
// op on a ConfigMap: obj and old are the new and old objects (nil for none).
func AdmissionReview(t testing.TB, op admissionv1.Operation, uid string, obj, old runtime.Object) []byte {
	t.Helper()
	raw := func(o runtime.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(uid),
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Operation: op,
		Object:    raw(obj),
		OldObject: raw(old),
	}
	if m, ok := obj.(metav1.Object); ok {
		req.Name, req.Namespace = m.GetName(), m.GetNamespace()
	} else if m, ok := old.(metav1.Object); ok {
		req.Name, req.Namespace = m.GetName(), m.GetNamespace()
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PostAdmission posts an AdmissionReview to the webhook's path and returns
// the HTTP response's status, the response in the AdmissionReview, and the
// TLS state of the connection. An error is a failed request (no answer).
func (w *WebhookProcess) PostAdmission(c *http.Client, path string, body []byte) (int, *admissionv1.AdmissionResponse, *tls.ConnectionState, error) {
	resp, err := c.Post("https://"+w.Addr()+path+"?timeout=5s", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, resp.TLS, err
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &ar); err != nil || ar.Response == nil {
		return resp.StatusCode, nil, resp.TLS, fmt.Errorf("HTTP %d, not an AdmissionReview response: %q", resp.StatusCode, data)
	}
	return resp.StatusCode, ar.Response, resp.TLS, nil
}
