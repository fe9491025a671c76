package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// servingCertificate exports the validity of the certificate the webhook
// serves, so that an alert can fire before it expires (cert-manager renews
// it in place; a renewal that keeps failing shows as a shrinking lifetime).
// The certificate watcher calls observe with every certificate it loads,
// so the gauges describe what is served, not what is on disk.
type servingCertificate struct {
	mu                  sync.Mutex
	notBefore, notAfter prometheus.Gauge
}

func newServingCertificate() *servingCertificate {
	return &servingCertificate{
		notBefore: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aws_auth_webhook_serving_certificate_not_before_timestamp_seconds",
			Help: "Start of validity (NotBefore) of the TLS certificate the webhook serves, as Unix time.",
		}),
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aws_auth_webhook_serving_certificate_not_after_timestamp_seconds",
			Help: "Expiry (NotAfter) of the TLS certificate the webhook serves, as Unix time.",
		}),
	}
}

// observe records the leaf of cert; a certificate that does not parse
// leaves the gauges as they were (the watcher has already refused it).
func (s *servingCertificate) observe(cert tls.Certificate) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notBefore.Set(float64(leaf.NotBefore.Unix()))
	s.notAfter.Set(float64(leaf.NotAfter.Unix()))
}

func (s *servingCertificate) Describe(ch chan<- *prometheus.Desc) {
	s.notBefore.Describe(ch)
	s.notAfter.Describe(ch)
}

func (s *servingCertificate) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notBefore.Collect(ch)
	s.notAfter.Collect(ch)
}

// readyCheck is one named readiness check, as /readyz runs it.
type readyCheck struct {
	name  string
	check healthz.Checker
}

// readiness exports aws_auth_webhook_ready: 1 when every readiness check
// passes (what /readyz answers), else 0. A replica that is up but not
// ready is still scraped, so the gauge tells "not ready" from "not there".
type readiness struct {
	checks  []readyCheck
	timeout time.Duration
	desc    *prometheus.Desc
}

func newReadiness(checks []readyCheck) *readiness {
	return &readiness{
		checks:  checks,
		timeout: 5 * time.Second,
		desc: prometheus.NewDesc("aws_auth_webhook_ready",
			"1 when every readiness check of /readyz passes (the webhook serves TLS and the first AWS identity lookup is done), else 0.", nil, nil),
	}
}

func (r *readiness) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *readiness) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, r.value())
}

func (r *readiness) value() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/readyz", nil)
	if err != nil {
		return 0
	}
	for _, c := range r.checks {
		if c.check(req) != nil {
			return 0
		}
	}
	return 1
}
