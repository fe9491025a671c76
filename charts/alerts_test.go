package charts

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// targetLabels are the labels Prometheus (through the ServiceMonitor)
// puts on every scraped series; the binary cannot export them.
var targetLabels = map[string]bool{
	"job": true, "namespace": true, "pod": true, "instance": true, "service": true, "endpoint": true, "container": true,
}

// series is one exported series: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// promSelector is one series selector of an alert expression, as
// Prometheus's parser reads it (e2e/tools/promql).
type promSelector struct {
	Metric   string `json:"metric"`
	Matchers []struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"matchers"`
}

type parsedExpr struct {
	Name      string         `json:"name"`
	Error     string         `json:"error"`
	Selectors []promSelector `json:"selectors"`
}

// TestAlertsReferOnlyToExportedMetrics: every alert expression parses with
// Prometheus's own parser, and every series it selects is one the real
// binary exports — scraped from `aws-auth-webhook serve` after a pass of
// each code path the alerts watch (an admission refused, a permission set
// resolved, a resync pass) — with label values it really uses. So a
// renamed metric, label or label value breaks this test, not the alert.
func TestAlertsReferOnlyToExportedMetrics(t *testing.T) {
	rules := renderAlerts(t)
	exported := scrapeServe(t)
	var names []string
	for n := range exported {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("the binary exports %d series names after exercising it", len(names))

	parsed := parsePromQL(t, rules)
	for _, p := range parsed {
		if problems := checkExpr(p, exported); len(problems) > 0 {
			t.Errorf("alert %s:\n  %s", p.Name, strings.Join(problems, "\n  "))
		} else {
			t.Logf("alert %s: %d selectors, all exported", p.Name, len(p.Selectors))
		}
	}

	// The check itself catches a renamed metric, label value and a
	// syntax error (so this test can fail).
	broken := parsePromQL(t, []alertRule{
		{Alert: "Renamed", Expr: `rate(aws_auth_webhook_audit_event_total[5m]) > 0`},
		{Alert: "LabelValue", Expr: `aws_auth_webhook_resync_runs_total{result="failure"} > 0`},
		{Alert: "Syntax", Expr: `rate(aws_auth_webhook_ready) > 0`},
	})
	for _, p := range broken {
		if problems := checkExpr(p, exported); len(problems) == 0 {
			t.Errorf("the check accepts the broken expression of %s", p.Name)
		}
	}
}

// checkExpr lists what in p the binary does not export.
func checkExpr(p parsedExpr, exported map[string][]series) []string {
	if p.Error != "" {
		return []string{"does not parse: " + p.Error}
	}
	if len(p.Selectors) == 0 {
		return []string{"selects no series"}
	}
	var problems []string
	for _, s := range p.Selectors {
		have, ok := exported[s.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %q is not exported by the binary", s.Metric))
			continue
		}
		matched := false
		for _, se := range have {
			all := true
			for _, m := range s.Matchers {
				if targetLabels[m.Name] {
					continue
				}
				v := se.labels[m.Name]
				switch m.Type {
				case "=":
					all = all && v == m.Value
				case "!=":
					all = all && v != m.Value
				case "=~":
					all = all && regexp.MustCompile("^(?:"+m.Value+")$").MatchString(v)
				case "!~":
					all = all && !regexp.MustCompile("^(?:"+m.Value+")$").MatchString(v)
				}
			}
			matched = matched || all
		}
		if !matched {
			var sets []string
			for _, se := range have {
				sets = append(sets, fmt.Sprint(se.labels))
			}
			problems = append(problems, fmt.Sprintf("no series of %s has the labels %+v (exported: %s)", s.Metric, s.Matchers, strings.Join(sets, " ")))
		}
	}
	return problems
}

// parsePromQL runs e2e/tools/promql (Prometheus's parser, in a module of
// its own) over the rules' expressions.
func parsePromQL(t *testing.T, rules []alertRule) []parsedExpr {
	t.Helper()
	type in struct {
		Name string `json:"name"`
		Expr string `json:"expr"`
	}
	var input []in
	for _, r := range rules {
		input = append(input, in{r.Alert, r.Expr})
	}
	raw, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = filepath.Join("..", "e2e", "tools", "promql")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("e2e/tools/promql: %v\n%s", err, stderr.String())
	}
	var parsed []parsedExpr
	if err := json.Unmarshal(out, &parsed); err != nil || len(parsed) != len(rules) {
		t.Fatalf("e2e/tools/promql answered %d results for %d expressions (%v):\n%s", len(parsed), len(rules), err, out)
	}
	return parsed
}

// scrapeServe builds and runs `aws-auth-webhook serve` (AWS from the
// emulator; the Kubernetes API unreachable, so the resync loop's pass
// fails and is counted), sends it a refused and a resolved admission, and
// returns what /metrics exports, by series name.
func scrapeServe(t *testing.T) map[string][]series {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "aws-auth-webhook")
	build := exec.Command("go", "build", "-o", bin, "./cmd/aws-auth-webhook")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binary: %v\n%s", err, out)
	}

	emu := awsemu.New(awsemu.Config{AccountID: "111122223333", Region: "eu-west-1",
		Roles: []awsemu.Role{awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1")}})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)

	certDir := filepath.Join(dir, "tls")
	caPool := writeServingCert(t, certDir)
	// A Kubernetes API nobody answers: a port that was free a moment ago.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: unused}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, freeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	webhookAddr, metricsAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(webhookAddr)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--kubeconfig="+kubeconfig, "--port="+webhookPort, "--cert-dir="+certDir,
		"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+healthAddr, "--leader-elect=false",
		"--resync-interval=1h", "--node-role-arn=arn:aws:iam::111122223333:role/eks-node-group-1", "--log-level=debug")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "POD_NAMESPACE=aws-auth-webhook",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	for k, v := range emu.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("aws-auth-webhook serve log:\n%s", log.String())
		}
	})

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: caPool, ServerName: "webhook.test", MinVersion: tls.VersionTLS12}}}
	waitFor(t, "/readyz", func() bool {
		resp, err := hc.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A malformed edit, refused; a permission set, resolved.
	if got := admit(t, hc, webhookPort, "/validate", "- rolearn: [broken\n"); got.Allowed {
		t.Fatalf("a malformed mapRoles was allowed: %+v", got)
	}
	if got := admit(t, hc, webhookPort, "/mutate", "- permissionset: Admin\n  username: admin\n  groups: [admins]\n"); !got.Allowed || len(got.Patch) == 0 {
		t.Fatalf("the permission set was not resolved: %+v", got)
	}

	var exported map[string][]series
	waitFor(t, "a resync pass and the refusal on /metrics", func() bool {
		exported = scrape(t, "http://"+metricsAddr+"/metrics")
		return has(exported, "aws_auth_webhook_resync_runs_total", "result", "failed", 1) &&
			has(exported, "aws_auth_webhook_audit_events_total", "action", "Rejected", 1)
	})
	return exported
}

// has reports whether a series of name with label=value has at least min.
func has(exported map[string][]series, name, label, value string, min float64) bool {
	for _, s := range exported[name] {
		if s.labels[label] == value && s.value >= min {
			return true
		}
	}
	return false
}

// scrape reads a Prometheus text exposition into series by name (a
// histogram's as its _bucket, _sum and _count series).
func scrape(t *testing.T, url string) map[string][]series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	out := map[string][]series{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			add := func(n string, value float64, extra ...string) {
				ls := map[string]string{}
				for k, v := range labels {
					ls[k] = v
				}
				for i := 0; i+1 < len(extra); i += 2 {
					ls[extra[i]] = extra[i+1]
				}
				out[n] = append(out[n], series{labels: ls, value: value})
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", float64(b.GetCumulativeCount()), "le", fmt.Sprint(b.GetUpperBound()))
				}
				add(name+"_sum", m.GetHistogram().GetSampleSum())
				add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
			case dto.MetricType_SUMMARY:
				add(name, 0)
				add(name+"_sum", m.GetSummary().GetSampleSum())
				add(name+"_count", float64(m.GetSummary().GetSampleCount()))
			case dto.MetricType_COUNTER:
				add(name, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetGauge().GetValue())
			default:
				add(name, m.GetUntyped().GetValue())
			}
		}
	}
	return out
}

// admit posts an AdmissionReview of kube-system/aws-auth holding mapRoles
// and returns the response.
func admit(t *testing.T, hc *http.Client, port, path, mapRoles string) *admissionv1.AdmissionResponse {
	t.Helper()
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}, Data: map[string]string{"mapRoles": mapRoles}}
	obj, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID(path), Operation: admissionv1.Create,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Namespace: "kube-system", Name: "aws-auth", Object: runtime.RawExtension{Raw: obj},
			UserInfo: authenticationv1.UserInfo{Username: "alice"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post("https://"+net.JoinHostPort("127.0.0.1", port)+path+"?timeout=5s", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil || review.Response == nil {
		t.Fatalf("POST %s: %d %s (%v)", path, resp.StatusCode, raw, err)
	}
	return review.Response
}

// writeServingCert writes a self-signed tls.crt/tls.key for webhook.test
// into dir and returns a pool trusting it.
func writeServingCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook.test"},
		DNSNames: []string{"webhook.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
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
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(crt)
	return pool
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
