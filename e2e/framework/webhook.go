//go:build e2e

package framework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// WebhookScope says which object the webhook configurations send to the
// webhook and where the apiserver reaches it. The zero value is what the
// chart ships by default.
type WebhookScope struct {
	// Name of both configurations; default "aws-auth-webhook".
	Name string
	// Namespace and ConfigMap are the guarded object; default kube-system
	// and aws-auth.
	Namespace, ConfigMap string
	// ServiceNamespace, ServiceName and ServicePort are the Service the
	// apiserver calls (clientConfig.service); default kube-system,
	// aws-auth-webhook, 443. envtest replaces a service reference with
	// https://<LocalServingHost>:<LocalServingPort>/<path> and its own CA.
	ServiceNamespace, ServiceName string
	ServicePort                   int32
	// URL, when set, is used instead of the Service: the base URL
	// (https://127.0.0.1:9443) the paths /mutate and /validate are appended to.
	URL string
	// CABundle is the PEM CA the apiserver trusts the webhook's certificate
	// with (envtest sets its own; cert-manager's cainjector injects one).
	CABundle []byte
	// TimeoutSeconds; default 5.
	TimeoutSeconds int32
	// FailurePolicy; default Fail.
	FailurePolicy admissionregistrationv1.FailurePolicyType
}

// Webhook names and paths, as the chart ships them.
const (
	MutatingWebhookName   = "mutate.aws-auth-webhook.io"
	ValidatingWebhookName = "validate.aws-auth-webhook.io"
	MutatePath            = "/mutate"
	ValidatePath          = "/validate"
)

// WebhookConfigurations returns the Mutating- and ValidatingWebhookConfiguration
// of aws-auth-webhook, scoped as the chart ships them, so that no object but
// the guarded ConfigMap is ever sent: configmaps only (CREATE, UPDATE for
// mutation; CREATE, UPDATE, DELETE for validation), the guarded namespace by
// namespaceSelector, the guarded name by a matchCondition (on oldObject for
// DELETE, where object is null), sideEffects NoneOnDryRun, AdmissionReview
// v1, a short timeout and failurePolicy Fail.
func WebhookConfigurations(s WebhookScope) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	if s.Name == "" {
		s.Name = "aws-auth-webhook"
	}
	if s.Namespace == "" {
		s.Namespace = metav1.NamespaceSystem
	}
	if s.ConfigMap == "" {
		s.ConfigMap = "aws-auth"
	}
	if s.ServiceNamespace == "" {
		s.ServiceNamespace = metav1.NamespaceSystem
	}
	if s.ServiceName == "" {
		s.ServiceName = "aws-auth-webhook"
	}
	if s.ServicePort == 0 {
		s.ServicePort = 443
	}
	if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = 5
	}
	if s.FailurePolicy == "" {
		s.FailurePolicy = admissionregistrationv1.Fail
	}
	clientConfig := func(path string) admissionregistrationv1.WebhookClientConfig {
		cc := admissionregistrationv1.WebhookClientConfig{CABundle: s.CABundle}
		if s.URL != "" {
			cc.URL = ptr.To(strings.TrimSuffix(s.URL, "/") + path)
		} else {
			cc.Service = &admissionregistrationv1.ServiceReference{
				Namespace: s.ServiceNamespace, Name: s.ServiceName, Path: ptr.To(path), Port: ptr.To(s.ServicePort),
			}
		}
		return cc
	}
	rule := func(ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
		return []admissionregistrationv1.RuleWithOperations{{
			Operations: ops,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{""},
				APIVersions: []string{"v1"},
				Resources:   []string{"configmaps"},
				Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
			},
		}}
	}
	namespaceSelector := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": s.Namespace}}
	matchConditions := []admissionregistrationv1.MatchCondition{{
		Name:       "only-the-guarded-configmap",
		Expression: fmt.Sprintf(`(request.operation == "DELETE" ? oldObject : object).metadata.name == %q`, s.ConfigMap),
	}}
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    MutatingWebhookName,
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &sideEffects,
			FailurePolicy:           ptr.To(s.FailurePolicy),
			TimeoutSeconds:          ptr.To(s.TimeoutSeconds),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			ClientConfig:            clientConfig(MutatePath),
			Rules:                   rule(admissionregistrationv1.Create, admissionregistrationv1.Update),
			NamespaceSelector:       namespaceSelector,
			MatchConditions:         matchConditions,
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ValidatingWebhookName,
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &sideEffects,
			FailurePolicy:           ptr.To(s.FailurePolicy),
			TimeoutSeconds:          ptr.To(s.TimeoutSeconds),
			ClientConfig:            clientConfig(ValidatePath),
			Rules:                   rule(admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete),
			NamespaceSelector:       namespaceSelector.DeepCopy(),
			MatchConditions:         append([]admissionregistrationv1.MatchCondition(nil), matchConditions...),
		}},
	}
	return mutating, validating
}

// WebhookOptions tune StartWebhook.
type WebhookOptions struct {
	// Bin is the aws-auth-webhook binary; default WebhookBinary(t).
	Bin string
	// Emulator serves AWS to the process (its Env() is added to the
	// environment). Required.
	Emulator *awsemu.Server
	// Args are extra `serve` flags, e.g. --resync-interval=1s,
	// --break-glass-group=platform:break-glass.
	Args []string
	// Env is extra environment.
	Env map[string]string
	// ReadyTimeout bounds the wait for /readyz; default 30s.
	ReadyTimeout time.Duration
	// WaitPath is what StartWebhook waits to answer 200: default /readyz;
	// /healthz for a replica that is expected not to be ready (its AWS
	// identity cannot be read).
	WaitPath string
	// Port is the webhook's HTTPS port; default envtest's LocalServingPort
	// (the one the apiserver calls). Another port runs a replica the
	// apiserver does not call.
	Port int
	// CertDir holds tls.crt and tls.key; default envtest's
	// LocalServingCertDir.
	CertDir string
	// Pprof serves Go's /debug/pprof on a free loopback port (PprofAddr).
	Pprof bool
}

// WebhookProcess is a running `aws-auth-webhook serve`.
type WebhookProcess struct {
	// Port is the webhook's HTTPS port; HealthAddr and MetricsAddr are
	// host:port of the probe and metrics servers; PprofAddr of
	// /debug/pprof, with WebhookOptions.Pprof.
	Port        int
	HealthAddr  string
	MetricsAddr string
	PprofAddr   string
	Args        []string
	cmd         *exec.Cmd
	logs        *syncBuffer
	exited      chan struct{}
	exitErr     error
	stopOnce    sync.Once
	logsDumped  bool
}

// StartWebhook runs `aws-auth-webhook serve` as a subprocess: on envtest's
// webhook port with envtest's serving certificate (cp must have been
// started with webhook configurations, see WebhookConfigurations), as the
// admin user of cp's kubeconfig, against the AWS emulator, with leader
// election off and health and metrics on free loopback ports. It waits until
// /readyz answers 200. The process is killed when the test ends; its log
// is written to the test log when the test failed (or at once if it does
// not get ready).
func (cp *ControlPlane) StartWebhook(t testing.TB, opts WebhookOptions) *WebhookProcess {
	t.Helper()
	if opts.Emulator == nil {
		t.Fatal("StartWebhook: WebhookOptions.Emulator is required")
	}
	if cp.Webhook == nil || cp.Webhook.LocalServingPort == 0 || cp.Webhook.LocalServingCertDir == "" {
		t.Fatal("StartWebhook: the control plane was started without webhook configurations (Options.Webhooks)")
	}
	if opts.Bin == "" {
		opts.Bin = WebhookBinary(t)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Port == 0 {
		opts.Port = cp.Webhook.LocalServingPort
	}
	if opts.CertDir == "" {
		opts.CertDir = cp.Webhook.LocalServingCertDir
	}
	w := &WebhookProcess{
		Port:        opts.Port,
		HealthAddr:  freeAddr(t),
		MetricsAddr: freeAddr(t),
		logs:        &syncBuffer{},
		exited:      make(chan struct{}),
	}
	w.Args = append([]string{"serve",
		"--kubeconfig=" + cp.Kubeconfig(t),
		fmt.Sprintf("--port=%d", w.Port),
		"--cert-dir=" + opts.CertDir,
		"--health-probe-bind-address=" + w.HealthAddr,
		"--metrics-bind-address=" + w.MetricsAddr,
		"--leader-elect=false",
		"--log-format=json",
	}, opts.Args...)
	if opts.Pprof {
		w.PprofAddr = freeAddr(t)
		w.Args = append(w.Args, "--pprof-bind-address="+w.PprofAddr)
	}

	env := os.Environ()
	for k, v := range opts.Emulator.Env() {
		env = append(env, k+"="+v)
	}
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	// No shared AWS config or profile of the machine may leak in.
	env = append(env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PROFILE=", "KUBECONFIG=")

	w.cmd = exec.Command(opts.Bin, w.Args...)
	w.cmd.Env = env
	w.cmd.Stdout, w.cmd.Stderr = w.logs, w.logs
	// Its own process group, so a kill reaches nothing else; killed with
	// the test binary even when no cleanup runs (a panic, a -timeout).
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", opts.Bin, err)
	}
	go func() {
		w.exitErr = w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.Stop(t)
		if t.Failed() {
			w.DumpLogs(t)
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(opts.ReadyTimeout)
	waitPath := opts.WaitPath
	if waitPath == "" {
		waitPath = "/readyz"
	}
	for {
		select {
		case <-w.exited:
			w.DumpLogs(t)
			t.Fatalf("aws-auth-webhook serve exited before it was ready: %v", w.exitErr)
		default:
		}
		resp, err := client.Get("http://" + w.HealthAddr + waitPath)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			w.DumpLogs(t)
			t.Fatalf("aws-auth-webhook serve not ready within %v (last: %v)", opts.ReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("aws-auth-webhook serve ready in %v (webhook :%d, health %s, metrics %s)",
		time.Since(start).Round(time.Millisecond), w.Port, w.HealthAddr, w.MetricsAddr)
	return w
}

// Stop ends the process: SIGTERM, then SIGKILL after 10s. It is safe to
// call more than once.
func (w *WebhookProcess) Stop(t testing.TB) {
	w.stopOnce.Do(func() {
		select {
		case <-w.exited:
			t.Errorf("aws-auth-webhook serve had exited before the end of the test: %v", w.exitErr)
			return
		default:
		}
		start := time.Now()
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-w.exited:
			t.Logf("aws-auth-webhook serve stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Errorf("aws-auth-webhook serve did not stop within 10s of SIGTERM; killing it")
			_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-w.exited
		}
	})
}

// Exited reports whether the process has ended.
func (w *WebhookProcess) Exited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// Logs returns everything the process has written so far.
func (w *WebhookProcess) Logs() string { return w.logs.String() }

// DumpLogs writes the process log to the test log (once).
func (w *WebhookProcess) DumpLogs(t testing.TB) {
	t.Helper()
	if w.logsDumped {
		return
	}
	w.logsDumped = true
	t.Logf("aws-auth-webhook %s\n----- log -----\n%s----- end of log -----", strings.Join(w.Args, " "), w.Logs())
}

// Get fetches http://addr+path and returns the status and body.
func (w *WebhookProcess) Get(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	return resp.StatusCode, string(body)
}

// DialTLS connects to the webhook port with cfg (which may pin MaxVersion)
// and returns the TLS connection state.
func (w *WebhookProcess) DialTLS(cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(w.Port)), cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// Metrics scrapes /metrics.
func (w *WebhookProcess) Metrics(t testing.TB) Samples {
	t.Helper()
	code, body := w.Get(t, w.MetricsAddr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	return ParseMetrics(body)
}

// Sample is one line of the Prometheus text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is a scrape.
type Samples []Sample

// Sum adds the values of every sample named name whose labels include
// labels (nil: all of them).
func (s Samples) Sum(name string, labels map[string]string) float64 {
	total := 0.0
	for _, x := range s {
		if x.Name != name {
			continue
		}
		match := true
		for k, v := range labels {
			if x.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			total += x.Value
		}
	}
	return total
}

// Has reports whether a sample named name (a family with no samples does not
// count) was scraped.
func (s Samples) Has(name string) bool {
	for _, x := range s {
		if x.Name == name {
			return true
		}
	}
	return false
}

// String lists the samples, for failure messages.
func (s Samples) String() string {
	var lines []string
	for _, x := range s {
		var ls []string
		for k, v := range x.Labels {
			ls = append(ls, k+"="+strconv.Quote(v))
		}
		sort.Strings(ls)
		lines = append(lines, fmt.Sprintf("%s{%s} %g", x.Name, strings.Join(ls, ","), x.Value))
	}
	return strings.Join(lines, "\n")
}

// ParseMetrics reads the Prometheus text exposition format (enough of it
// for counters and gauges: name{label="value",...} value).
func ParseMetrics(text string) Samples {
	var out Samples
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i >= 0 && rest[i] == '{' {
			s.Name = rest[:i]
			rest = rest[i+1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.IndexByte(rest, '=')
				if eq < 0 {
					break
				}
				key := rest[:eq]
				val, n, ok := unquotePrefix(rest[eq+1:])
				if !ok {
					break
				}
				s.Labels[key] = val
				rest = rest[eq+1+n:]
			}
		} else if i >= 0 {
			s.Name, rest = rest[:i], rest[i:]
		}
		fields := strings.Fields(rest)
		if s.Name == "" || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		s.Value = v
		out = append(out, s)
	}
	return out
}

// unquotePrefix reads a double-quoted label value at the start of s and
// returns it and how many bytes it took.
func unquotePrefix(s string) (string, int, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", 0, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
			}
		case '"':
			return b.String(), i + 1, true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, false
}

// WebhookBinary returns the aws-auth-webhook binary the tests run: the one
// in $AWS_AUTH_WEBHOOK_BIN (the folder `make build` fills; `make e2e` sets
// it), else one built now from this checkout into the test's temporary
// folder (Go's build cache makes a rebuild cheap).
func WebhookBinary(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("AWS_AUTH_WEBHOOK_BIN"); dir != "" {
		p := filepath.Join(dir, "aws-auth-webhook")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("AWS_AUTH_WEBHOOK_BIN=%s: %v (run `make build`)", dir, err)
		}
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "aws-auth-webhook")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/aws-auth-webhook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("AWS_AUTH_WEBHOOK_BIN is not set, and go build ./cmd/aws-auth-webhook failed: %v\n%s", err, out)
	}
	t.Logf("AWS_AUTH_WEBHOOK_BIN is not set: built %s", bin)
	return bin
}

// freeAddr returns a free 127.0.0.1:port.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
