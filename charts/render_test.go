package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// These tests render the chart with the helm binary `make lint` uses
// (e2e/tools/install.sh builds it once into the cache) and check what the
// templates produce; the e2e Helm install proves the objects on a real
// apiserver.

const (
	testRelease   = "aaw"
	testNamespace = "aaw-system"
)

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		cmd := exec.Command(filepath.Join("..", "e2e", "tools", "install.sh"), "helm")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			helmErr = fmt.Errorf("e2e/tools/install.sh helm: %w\n%s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		helmPath = filepath.Join(lines[len(lines)-1], "helm")
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// rendering is one `helm template` output.
type rendering []*unstructured.Unstructured

func render(t *testing.T, set ...string) rendering {
	t.Helper()
	args := []string{"template", testRelease, chartDir, "--namespace", testNamespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r rendering
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if m != nil {
			r = append(r, &unstructured.Unstructured{Object: m})
		}
	}
	return r
}

func (r rendering) of(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one converts the single object of kind into T.
func one[T any](t *testing.T, r rendering, kind string) *T {
	t.Helper()
	objs := r.of(kind)
	if len(objs) != 1 {
		t.Fatalf("want one %s, rendered %d", kind, len(objs))
	}
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return &v
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, name)
	return 0
}

// ingressFor returns the rules of np that open port (TCP).
func ingressFor(np *networkingv1.NetworkPolicy, port int32) []networkingv1.NetworkPolicyIngressRule {
	var out []networkingv1.NetworkPolicyIngressRule
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.Type == intstr.Int && p.Port.IntVal == port &&
				(p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) {
				out = append(out, r)
			}
		}
	}
	return out
}

// TestNetworkPolicy: on by default; it selects exactly the webhook's pods
// and admits, on each port the container serves, what must reach it —
// the webhook port from any source unless webhookFrom names peers (the
// control plane calls from no pod), the probe port from any source (the
// kubelet probes from the host network), /metrics only from pods of the
// selected namespaces — and nothing else.
func TestNetworkPolicy(t *testing.T) {
	for _, tc := range []struct {
		name             string
		set              []string
		webhookFrom      []networkingv1.NetworkPolicyPeer
		metricsNamespace *metav1.LabelSelector
	}{
		{name: "defaults", metricsNamespace: &metav1.LabelSelector{}},
		{name: "peers and ports from values",
			set: []string{"networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24", "networkPolicy.webhookFrom[1].ipBlock.cidr=10.0.1.0/24",
				"networkPolicy.metrics.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
				"webhook.port=10250", "metricsPort=9090", "healthProbePort=9091"},
			webhookFrom: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.0.1.0/24"}}},
			metricsNamespace: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.set...)
			np := one[networkingv1.NetworkPolicy](t, r, "NetworkPolicy")
			deploy := one[appsv1.Deployment](t, r, "Deployment")
			if np.Namespace != testNamespace {
				t.Errorf("NetworkPolicy in %q, want the release namespace", np.Namespace)
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(deploy.Spec.Template.Labels)) {
				t.Errorf("podSelector %v does not select the Deployment's pods %v", np.Spec.PodSelector, deploy.Spec.Template.Labels)
			}
			if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policyTypes %v, want Ingress only (egress goes to the apiserver and AWS)", np.Spec.PolicyTypes)
			}
			c := deploy.Spec.Template.Spec.Containers[0]
			webhookPort, healthPort, metricsPort := containerPort(t, c, "webhook"), containerPort(t, c, "health"), containerPort(t, c, "metrics")
			if len(c.Ports) != 3 || len(np.Spec.Ingress) != 3 {
				t.Errorf("the container serves %d ports and the policy has %d rules, want one rule per port", len(c.Ports), len(np.Spec.Ingress))
			}
			if c.ReadinessProbe.HTTPGet.Port.StrVal != "health" || c.LivenessProbe.HTTPGet.Port.StrVal != "health" {
				t.Errorf("the probes use ports %v and %v, not health", c.ReadinessProbe.HTTPGet.Port, c.LivenessProbe.HTTPGet.Port)
			}

			rules := ingressFor(np, webhookPort)
			if len(rules) != 1 || !reflect.DeepEqual(rules[0].From, tc.webhookFrom) {
				t.Errorf("webhook port %d: rules %+v, want one from %+v", webhookPort, rules, tc.webhookFrom)
			}
			rules = ingressFor(np, healthPort)
			if len(rules) != 1 || len(rules[0].From) != 0 {
				t.Errorf("probe port %d: rules %+v, want one from any source (the kubelet probes from the host network)", healthPort, rules)
			}
			rules = ingressFor(np, metricsPort)
			want := []networkingv1.NetworkPolicyPeer{{NamespaceSelector: tc.metricsNamespace, PodSelector: &metav1.LabelSelector{}}}
			if len(rules) != 1 || !reflect.DeepEqual(rules[0].From, want) {
				t.Errorf("metrics port %d: rules %+v, want one from %+v", metricsPort, rules, want)
			}
		})
	}
	if np := render(t, "networkPolicy.enabled=false").of("NetworkPolicy"); len(np) != 0 {
		t.Errorf("networkPolicy.enabled=false rendered %d NetworkPolicies", len(np))
	}
}

// serviceMonitor is the part of a ServiceMonitor the chart sets.
type serviceMonitor struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string           `json:"port"`
			Path          string           `json:"path"`
			Scheme        string           `json:"scheme"`
			Interval      string           `json:"interval"`
			ScrapeTimeout string           `json:"scrapeTimeout"`
			Relabelings   []map[string]any `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func TestServiceMonitor(t *testing.T) {
	if got := render(t).of("ServiceMonitor"); len(got) != 0 {
		t.Fatalf("a ServiceMonitor by default (the CRD may not exist): %v", got)
	}
	r := render(t, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kube-prometheus-stack",
		"serviceMonitor.interval=15s", "serviceMonitor.relabelings[0].action=labeldrop", "serviceMonitor.relabelings[0].regex=pod_template_hash")
	sm := one[serviceMonitor](t, r, "ServiceMonitor")
	svc := one[corev1.Service](t, r, "Service")
	deploy := one[appsv1.Deployment](t, r, "Deployment")
	if sm.Labels["release"] != "kube-prometheus-stack" || sm.Namespace != testNamespace {
		t.Errorf("ServiceMonitor labels %v in %q", sm.Labels, sm.Namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) || !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{testNamespace}) {
		t.Errorf("the ServiceMonitor (%v in %v) does not select the Service %v", sm.Spec.Selector, sm.Spec.NamespaceSelector.MatchNames, svc.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	var target intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if p.Name == ep.Port {
			target = p.TargetPort
		}
	}
	c := deploy.Spec.Template.Spec.Containers[0]
	if target.StrVal != "metrics" || !slices.Contains(c.Args, fmt.Sprintf("--metrics-bind-address=:%d", containerPort(t, c, "metrics"))) {
		t.Errorf("endpoint port %q reaches %v on the pod, not the port the binary serves /metrics on (args %v)", ep.Port, target, c.Args)
	}
	if ep.Path != "/metrics" || ep.Scheme != "http" || ep.Interval != "15s" || len(ep.Relabelings) != 1 {
		t.Errorf("endpoint %+v", ep)
	}
}

// alertRule is one rule of the rendered PrometheusRule.
type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func renderAlerts(t *testing.T, set ...string) []alertRule {
	t.Helper()
	pr := one[prometheusRule](t, render(t, append([]string{"prometheusRule.enabled=true"}, set...)...), "PrometheusRule")
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// wantAlerts are the alerts the issue asks for, each with its README
// runbook section.
var wantAlerts = []string{
	"AwsAuthWebhookNotReady", "AwsAuthWebhookDenialsRising", "AwsAuthWebhookResyncFailing",
	"AwsAuthWebhookResyncStale", "AwsAuthWebhookIAMUnavailable", "AwsAuthWebhookCertificateExpiring",
}

// TestPrometheusRule: off by default; on, every alert has a severity,
// the extra labels, a summary and description, and a runbook_url naming
// a section of the project README that exists under that name.
func TestPrometheusRule(t *testing.T) {
	if got := render(t).of("PrometheusRule"); len(got) != 0 {
		t.Fatalf("a PrometheusRule by default (the CRD may not exist): %v", got)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,4} (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		headings[strings.TrimSpace(m[1])] = true
	}
	rules := renderAlerts(t, "prometheusRule.additionalAlertLabels.team=platform", "prometheusRule.runbookBaseURL=https://example.com/r")
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q", r.Alert, s)
		}
		if r.Labels["team"] != "platform" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: labels %v, annotations %v", r.Alert, r.Labels, r.Annotations)
		}
		if want := "https://example.com/r#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !headings[r.Alert] {
			t.Errorf("%s: README.md has no section named %q, which its runbook_url points at", r.Alert, r.Alert)
		}
	}
	if !slices.Equal(names, wantAlerts) {
		t.Errorf("alerts %v, want %v", names, wantAlerts)
	}
}

// TestAlertThresholdsFollowTheValues: the resync alerts wait three resync
// intervals (at least 15 minutes) and the certificate alert fires when
// half of cert-manager's renewBefore window has passed without a renewal,
// so neither fires on a healthy install whatever the intervals are.
func TestAlertThresholdsFollowTheValues(t *testing.T) {
	for _, tc := range []struct {
		set                  []string
		resyncWindow, certIn string
	}{
		{nil, "900", "648000"}, // 5m -> 15m floor; 360h / 2
		{[]string{"resyncInterval=1h30m", "certManager.renewBefore=24h"}, "16200", "43200"},
		{[]string{"resyncInterval=90s", "certManager.renewBefore=", "certManager.duration=720h"}, "900", "432000"}, // 720h / 3 / 2
	} {
		byName := map[string]alertRule{}
		for _, r := range renderAlerts(t, tc.set...) {
			byName[r.Alert] = r
		}
		if e := byName["AwsAuthWebhookResyncStale"].Expr; !strings.HasSuffix(e, "> "+tc.resyncWindow) {
			t.Errorf("%v: ResyncStale %q, want > %s", tc.set, e, tc.resyncWindow)
		}
		if e := byName["AwsAuthWebhookResyncFailing"].Expr; strings.Count(e, "["+tc.resyncWindow+"s]") != 2 {
			t.Errorf("%v: ResyncFailing %q, want windows of %ss", tc.set, e, tc.resyncWindow)
		}
		if e := byName["AwsAuthWebhookCertificateExpiring"].Expr; !strings.HasSuffix(e, "< "+tc.certIn) {
			t.Errorf("%v: CertificateExpiring %q, want < %s", tc.set, e, tc.certIn)
		}
	}
}

func TestImageDigest(t *testing.T) {
	image := func(set ...string) string {
		return one[appsv1.Deployment](t, render(t, set...), "Deployment").Spec.Template.Spec.Containers[0].Image
	}
	if got := image(); got != "ghcr.io/aws-auth-webhook/aws-auth-webhook:0.1.0" {
		t.Errorf("default image %q, want the repository at the chart's appVersion", got)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	if got := image("image.digest="+digest, "image.tag=ignored"); got != "ghcr.io/aws-auth-webhook/aws-auth-webhook@"+digest {
		t.Errorf("with a digest: %q", got)
	}
	cmd := exec.Command(helmBinary(t), "template", testRelease, chartDir, "--set", "image.digest=latest")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "/image/digest") {
		t.Errorf("image.digest=latest was accepted (the schema wants sha256:<64 hex>): %v\n%s", err, out)
	}
}
