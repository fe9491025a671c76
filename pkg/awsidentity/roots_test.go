package awsidentity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The child process's settings: crypto/x509 loads the system roots once per
// process, so each case runs in a process of its own.
const (
	rootsChildEnv  = "AWSIDENTITY_ROOTS_CHILD"  // "ensure" or "plain"
	rootsOwnCAEnv  = "AWSIDENTITY_ROOTS_OWN_CA" // PEM file of a CA to verify
	rootsChildTest = "TestCompiledInRootsOnlyWhereTheSystemHasNone"
)

// On a system without CA roots, AWS's certificates (chained to Amazon Root
// CA 1) verify once LoadAWSConfig has run; on a system with roots, those
// and only those are trusted.
func TestCompiledInRootsOnlyWhereTheSystemHasNone(t *testing.T) {
	if mode := os.Getenv(rootsChildEnv); mode != "" {
		fmt.Println(rootsChild(mode == "ensure"))
		return
	}
	dir := t.TempDir()
	ownCA := filepath.Join(dir, "own-ca.pem")
	if err := os.WriteFile(ownCA, selfSignedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	noRoots := []string{"SSL_CERT_FILE=" + filepath.Join(dir, "absent.pem"), "SSL_CERT_DIR=" + filepath.Join(dir, "absent")}
	ownRoots := []string{"SSL_CERT_FILE=" + ownCA, "SSL_CERT_DIR=" + filepath.Join(dir, "absent")}
	for _, tc := range []struct {
		name string
		env  []string
		mode string
		want string
	}{
		{"no system roots, before LoadAWSConfig", noRoots, "plain", "amazon=unverified own=unverified"},
		{"no system roots", noRoots, "ensure", "amazon=verified own=unverified"},
		{"the system's roots", ownRoots, "ensure", "amazon=unverified own=verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^"+rootsChildTest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), append(tc.env, rootsChildEnv+"="+tc.mode, rootsOwnCAEnv+"="+ownCA)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want+"\n") {
				t.Fatalf("child said:\n%s\nwant %q", out, tc.want)
			}
		})
	}
}

// rootsChild verifies Amazon Root CA 1 and the test's own CA against the
// process's system roots, after LoadAWSConfig when ensure is set.
func rootsChild(ensure bool) string {
	if ensure {
		if _, err := LoadAWSConfig(context.Background(), "us-east-1"); err != nil {
			return "LoadAWSConfig: " + err.Error()
		}
	}
	verify := func(der []byte) string {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "unparsable"
		}
		if _, err := c.Verify(x509.VerifyOptions{}); err != nil {
			return "unverified"
		}
		return "verified"
	}
	amazon := "absent-from-bundle"
	for r := range bundle.Roots() {
		if c, err := x509.ParseCertificate(r.Certificate); err == nil && c.Subject.CommonName == "Amazon Root CA 1" {
			amazon = verify(r.Certificate)
		}
	}
	own := "unreadable"
	if b, err := os.ReadFile(os.Getenv(rootsOwnCAEnv)); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			own = verify(blk.Bytes)
		}
	}
	return "amazon=" + amazon + " own=" + own
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "awsidentity test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
