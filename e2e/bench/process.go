package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// writeCert writes a self-signed serving certificate for 127.0.0.1
// (tls.crt, tls.key) into dir and returns its PEM, which clients trust.
func writeCert(dir string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "aws-auth-webhook bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return certPEM, nil
}

// freePort returns a TCP port of 127.0.0.1 nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runNoop is the baseline: a controller-runtime webhook server with the
// same TLS settings and port handling as serve, whose handlers allow
// everything without looking at it. It serves until ctx ends.
func runNoop(ctx context.Context, port int, certDir string) error {
	srv := webhook.NewServer(webhook.Options{
		Port:    port,
		CertDir: certDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	srv.Register("/mutate", &webhook.Admission{Handler: allow})
	srv.Register("/validate", &webhook.Admission{Handler: allow})
	return srv.Start(ctx)
}

// proc is a server process under measurement.
type proc struct {
	name    string
	cmd     *exec.Cmd
	port    int
	health  string // host:port of /readyz, "" when the process has none
	metrics string
	ready   time.Duration // from exec to ready
	logPath string
	exited  chan struct{}
	err     error
	once    sync.Once
}

// limits is how a server is started: env added to ours, and the flags of
// `bench exec` (a cgroup to start in, the CPUs to run on), if any.
type limits struct {
	env  []string
	wrap []string
}

// serverEnv is a server's environment: this machine's, less every AWS_*
// setting, plus extra. In a pod the AWS settings come only from the chart
// and the credential injection (IRSA, Pod Identity); a developer's or a CI
// machine's (AWS_CA_BUNDLE, a profile) would change what serve loads and
// holds (AWS_CA_BUNDLE alone: a second parse of a whole CA bundle).
func serverEnv(host, extra []string) []string {
	env := make([]string, 0, len(host)+len(extra))
	for _, kv := range host {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// start execs bin with args and lim and waits until it is ready: /readyz
// answers 200, or, without a health address, the port accepts TLS.
func start(name, bin string, args []string, lim limits, port int, health, logDir string) (*proc, error) {
	p := &proc{name: name, port: port, health: health, exited: make(chan struct{}), logPath: filepath.Join(logDir, name+".log")}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	env := lim.env
	if len(lim.wrap) > 0 {
		self, err := os.Executable()
		if err != nil {
			logf.Close()
			return nil, err
		}
		args = append(append(append([]string{"exec"}, lim.wrap...), "--", bin), args...)
		bin = self
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = serverEnv(os.Environ(), env)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	hc := &http.Client{Timeout: time.Second}
	deadline := t0.Add(60 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%w); log: %s", name, p.err, tail(p.logPath))
		default:
		}
		if p.isReady(hc) {
			p.ready = time.Since(t0)
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready within 60s; log: %s", name, tail(p.logPath))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *proc) isReady(hc *http.Client) bool {
	if p.health != "" {
		resp, err := hc.Get("http://" + p.health + "/readyz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		&tls.Config{InsecureSkipVerify: true}) // only: does it serve TLS yet
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (p *proc) url() string { return fmt.Sprintf("https://127.0.0.1:%d", p.port) }

// stop sends SIGTERM, then SIGKILL after 10s.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	})
}

// cpu is the CPU time (user + system) the process has used so far, from
// /proc/<pid>/stat (utime, stime: in clock ticks, 100 a second on Linux).
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// alive tells whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// memory reads VmRSS and VmHWM (peak) of the process, in bytes.
func (p *proc) memory() (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

// resetPeak makes VmHWM start again from the current RSS (Linux
// clear_refs 5), so a peak can be measured per scenario.
func (p *proc) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// sampleRSS records the highest VmRSS seen until the returned function is
// called, which returns it together with VmHWM.
func (p *proc) sampleRSS() func() int64 {
	p.resetPeak()
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, hwm := p.memory(); max(rss, hwm) > peak {
				peak = max(rss, hwm)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		if _, hwm := p.memory(); hwm > peak {
			peak = hwm
		}
		return peak
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
