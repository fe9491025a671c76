package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// writeCert writes a self-signed tls.crt and tls.key valid from notBefore
// to notAfter into dir.
func writeCert(t *testing.T, dir string, notBefore, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(notAfter.Unix()), Subject: pkix.Name{CommonName: "webhook"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"webhook"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The gauges follow the certificate the watcher serves: the first one at
// once, a renewed one when the watcher reads it.
func TestServingCertificateFollowsTheWatcher(t *testing.T) {
	dir := t.TempDir()
	first := time.Unix(1700000000, 0)
	writeCert(t, dir, first, first.Add(90*24*time.Hour))
	cw, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	sc := newServingCertificate()
	reg := prometheus.NewRegistry()
	reg.MustRegister(sc)
	cw.RegisterCallback(sc.observe)
	if got := testutil.ToFloat64(sc.notAfter); got != float64(first.Add(90*24*time.Hour).Unix()) {
		t.Fatalf("not_after = %v, want the first certificate's %d", got, first.Add(90*24*time.Hour).Unix())
	}
	if got := testutil.ToFloat64(sc.notBefore); got != float64(first.Unix()) {
		t.Fatalf("not_before = %v, want %d", got, first.Unix())
	}

	renewed := first.Add(75 * 24 * time.Hour)
	writeCert(t, dir, renewed, renewed.Add(90*24*time.Hour))
	if err := cw.ReadCertificate(); err != nil {
		t.Fatal(err)
	}
	// The watcher calls back on a goroutine of its own.
	want := float64(renewed.Add(90 * 24 * time.Hour).Unix())
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(sc.notAfter) != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after renewal not_after = %v, want %v", testutil.ToFloat64(sc.notAfter), want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "aws_auth_webhook_serving_certificate_not_before_timestamp_seconds",
		"aws_auth_webhook_serving_certificate_not_after_timestamp_seconds"); err != nil || n != 2 {
		t.Fatalf("gathered %d series (%v), want 2", n, err)
	}
}

func TestReadinessMirrorsTheChecks(t *testing.T) {
	var webhookErr, identityErr error
	r := newReadiness([]readyCheck{
		{"webhook", func(*http.Request) error { return webhookErr }},
		{"identity", func(*http.Request) error { return identityErr }},
	})
	for _, tc := range []struct {
		webhook, identity error
		want              float64
	}{
		{errors.New("not started"), nil, 0},
		{nil, errors.New("lookup running"), 0},
		{nil, nil, 1},
	} {
		webhookErr, identityErr = tc.webhook, tc.identity
		if got := testutil.ToFloat64(r); got != tc.want {
			t.Errorf("webhook=%v identity=%v: aws_auth_webhook_ready = %v, want %v", tc.webhook, tc.identity, got, tc.want)
		}
	}
}
