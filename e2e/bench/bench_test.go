package main

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	admissionh "github.com/aws-auth-webhook/aws-auth-webhook/pkg/admission"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// TestLoadSmoke runs the load generator for a moment against the baseline
// server and against the admission handlers (both in process, on TLS
// loopback, no control plane), so that `make bench` cannot rot: every
// request must be answered and allowed, and the table must hold the
// figures. It asserts nothing about timing.
func TestLoadSmoke(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emu, err := startEmulator(20)
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resolver := awsidentity.New(awsCfg, awsidentity.Options{})
	w, err := buildWorkloadPS(ctx, "smoke", 12, 20, resolver)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	ca, err := writeCert(certDir)
	if err != nil {
		t.Fatal(err)
	}

	noopPort, _ := freePort()
	go func() { _ = runNoop(ctx, noopPort, certDir) }()
	oursPort, _ := freePort()
	srv := webhook.NewServer(webhook.Options{Port: oursPort, CertDir: certDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}})
	h := admissionh.New(admissionh.Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeRole}},
		resolver, audit.New(nil, logr.Discard(), prometheus.NewRegistry()), logr.Discard())
	srv.Register("/mutate", &webhook.Admission{Handler: h.Mutator()})
	srv.Register("/validate", &webhook.Admission{Handler: h.Validator()})
	go func() { _ = srv.Start(ctx) }()

	lt := loadTable(time.Second)
	for _, target := range []struct {
		name string
		port int
	}{{"baseline", noopPort}, {"aws-auth-webhook", oursPort}} {
		p := &proc{port: target.port}
		deadline := time.Now().Add(10 * time.Second)
		for !p.isReady(nil) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not serving", target.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		hc, err := newClient(ca, 2)
		if err != nil {
			t.Fatal(err)
		}
		res := load(ctx, hc, p.url(), w, 2, 2, time.Second, nil)
		if res.mutate.Requests == 0 || res.validate.Requests == 0 || res.mutate.Errors != 0 {
			t.Fatalf("%s: %d mutate, %d validate requests, %d errors (%s)", target.name, res.mutate.Requests, res.validate.Requests, res.mutate.Errors, res.mutate.FirstErr)
		}
		addLoadRows(lt, "12 entries", 2, 1, target.name, res, 0)
	}
	out := lt.String()
	t.Logf("\n%s", out)
	for _, col := range []string{"req/s", "p50", "p90", "p99", "max", "errors", "/mutate", "/validate", "baseline", "aws-auth-webhook"} {
		if !strings.Contains(out, col) {
			t.Errorf("the table lacks %q", col)
		}
	}
	if st := h.ReadingStats(); st.Hits == 0 {
		t.Errorf("the webhook never found an item's reading in memory: %+v", st)
	}
}

// TestConcurrentMissesMakeOneListing: 50 admissions missing the cache at
// once cost one ListRoles walk (here one page) and no STS call.
func TestConcurrentMissesMakeOneListing(t *testing.T) {
	ctx := context.Background()
	emu, err := startEmulator(20)
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := buildWorkloadPS(ctx, "miss", 30, 20, awsidentity.New(awsCfg, awsidentity.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	calls, err := concurrentMisses(ctx, emu, w, 50)
	if err != nil {
		t.Fatal(err)
	}
	if calls["iam:ListRoles"] != 1 || calls["sts:GetCallerIdentity"] != 0 || len(calls) != 1 {
		t.Fatalf("50 concurrent misses made %v, want one iam:ListRoles", calls)
	}
}
