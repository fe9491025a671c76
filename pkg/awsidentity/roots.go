package awsidentity

import (
	"crypto/x509"
	"sync"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// caRootsOnce makes ensureCARoots decide once per process.
var caRootsOnce sync.Once

// ensureCARoots makes AWS's TLS certificates verifiable on a system that
// has no CA bundle (a scratch image): there, and only there, the NSS roots
// compiled in from golang.org/x/crypto/x509roots/fallback/bundle become
// crypto/x509's fallback roots. Where the system has roots (distroless, the
// image `make image` builds), they are used and nothing else is parsed.
//
// Importing x509roots/fallback itself would parse all ~150 roots when the
// process starts and hold them (~0.6 MiB of heap) for its whole life, on
// every system, while the system's own roots cost ~0.25 MiB and are loaded
// anyway by the first TLS handshake with AWS.
func ensureCARoots() {
	caRootsOnce.Do(func() {
		pool, err := x509.SystemCertPool()
		if err == nil && !pool.Equal(x509.NewCertPool()) {
			return
		}
		x509.SetFallbackRoots(bundledRoots())
	})
}

// bundledRoots is the NSS trust store as a pool, with the distrust-after
// dates some roots carry kept as constraints (as x509roots/fallback does).
func bundledRoots() *x509.CertPool {
	p := x509.NewCertPool()
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			continue // cannot happen: the bundle's own tests parse every root
		}
		if r.Constraint == nil {
			p.AddCert(c)
		} else {
			p.AddCertWithConstraint(c, r.Constraint)
		}
	}
	return p
}
