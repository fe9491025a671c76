//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/server"
)

// The release the security test renders and installs the RBAC of.
const (
	secRelease   = "aws-auth-webhook"
	secNamespace = "aws-auth-webhook"
	secSA        = "aws-auth-webhook" // the release name contains the chart name
	// The memory limit the chart gives the container (values.yaml
	// resources.limits.memory).
	secMemoryLimit = 128 << 20
)

// secSecrets are credentials that must never show in a log, an Event or
// a metric.
type secSecrets struct {
	accessKeyID, secretAccessKey, sessionToken, bearerToken string
}

func (s secSecrets) all() map[string]string {
	return map[string]string{
		"AWS access key ID": s.accessKeyID, "AWS secret access key": s.secretAccessKey,
		"AWS session token": s.sessionToken, "Kubernetes bearer token": s.bearerToken,
	}
}

func randomString(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestSecurity runs the real binary as the chart's ServiceAccount — with a
// bearer token, under exactly the RBAC `helm template` renders — and with
// AWS credentials (access key, secret key and session token) in its
// environment, and probes it: TLS versions and cipher suites, plain HTTP,
// oversized bodies; the chart's RBAC, rendered and live; and, after a run
// that used every credential, that none of them is in its log, in any
// Event, or in its metrics.
func TestSecurity(t *testing.T) {
	helm := filepath.Join(helmTool(t, "helm"), "helm")
	chart := helmChartDir(t)
	mutating, validating := framework.WebhookConfigurations(framework.WebhookScope{})
	cp := framework.StartControlPlaneWith(t, framework.Options{Webhooks: envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
	}})
	ctx := context.Background()

	// The chart's ServiceAccount, Roles and RoleBindings, as rendered.
	rendered := secRender(t, helm, chart)
	if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: secNamespace}}); err != nil {
		t.Fatal(err)
	}
	for _, o := range rendered.objects {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding":
			if err := cp.Client.Create(ctx, o.DeepCopy()); err != nil {
				t.Fatalf("creating the chart's %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(secNamespace).CreateToken(ctx, secSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := secSecrets{
		accessKeyID:     "ASIA" + strings.ToUpper(randomString(t, 8)),
		secretAccessKey: randomString(t, 20),
		sessionToken:    "IQoJb3JpZ2luX2Vj" + randomString(t, 64),
		bearerToken:     tr.Status.Token,
	}
	kubeconfig := secTokenKubeconfig(t, cp, secrets.bearerToken)

	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", whRegion),
			awsemu.SSORole("Ops", "2222222222222222", whRegion),
			{Name: "github-deployer"}, {Name: "eks-node-group-1"},
		}})
	// IAM and STS through a front that records how requests were signed,
	// to show the credentials were used.
	front := secStartRecordingFront(t, emu)
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu,
		Env: map[string]string{
			"AWS_ENDPOINT_URL_IAM": front.url, "AWS_ENDPOINT_URL_STS": front.url,
			"AWS_ACCESS_KEY_ID": secrets.accessKeyID, "AWS_SECRET_ACCESS_KEY": secrets.secretAccessKey,
			"AWS_SESSION_TOKEN": secrets.sessionToken,
		},
		// The chart's flags that matter here; the token's kubeconfig
		// replaces the admin one (the last --kubeconfig wins).
		Args: []string{"--kubeconfig=" + kubeconfig, "--leader-elect=true", "--leader-election-namespace=" + secNamespace,
			"--resync-interval=1s", "--log-level=debug", "--break-glass-group=" + whBreakGlass},
	})
	s := &webhookSuite{cp: cp, emu: emu, wh: wh}

	t.Run("TLSVersionsAndCipherSuites", func(t *testing.T) { testTLS(t, cp, wh) })
	t.Run("PlainHTTPRefused", func(t *testing.T) { testPlainHTTP(t, wh) })
	t.Run("OversizedBodiesRefusedWithinMemory", func(t *testing.T) { testBodyLimit(t, s) })
	t.Run("ChartRBACIsExactlyWhatTheServerNeeds", func(t *testing.T) { testChartRBAC(t, cp, s, helm, chart, rendered) })
	t.Run("NoCredentialsInLogsEventsOrMetrics", func(t *testing.T) { testNoSecrets(t, s, front, secrets) })
}

// --- TLS -----------------------------------------------------------------------

// testTLS: TLS 1.0 and 1.1 handshakes are refused; 1.2 and 1.3 work; under
// TLS 1.2 every cipher suite Go implements is offered alone, and only the
// forward-secret AEAD ones are accepted (RSA key exchange, 3DES, RC4 and
// CBC-SHA suites are refused).
func testTLS(t *testing.T, cp *framework.ControlPlane, wh *framework.WebhookProcess) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cp.Webhook.LocalServingCAData) {
		t.Fatal("envtest's webhook CA is not PEM")
	}
	cfg := func(minV, maxV uint16, suites ...uint16) *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: minV, MaxVersion: maxV, CipherSuites: suites}
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := wh.DialTLS(cfg(v, v))
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s handshake: %v, want refused for its protocol version", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if st, err := wh.DialTLS(cfg(v, v)); err != nil || st.Version != v {
			t.Errorf("%s handshake: %v", tls.VersionName(v), err)
		}
	}
	var accepted, refused []string
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		if _, err := wh.DialTLS(cfg(tls.VersionTLS12, tls.VersionTLS12, cs.ID)); err == nil {
			accepted = append(accepted, cs.Name)
		} else {
			refused = append(refused, cs.Name)
		}
	}
	strong := map[string]bool{}
	for _, id := range server.TLS12CipherSuites() {
		strong[tls.CipherSuiteName(id)] = true
	}
	if len(accepted) == 0 {
		t.Error("no TLS 1.2 cipher suite was accepted")
	}
	for _, name := range accepted {
		if !strong[name] {
			t.Errorf("TLS 1.2 with only %s was accepted", name)
		}
	}
	for _, weak := range []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
		"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"} {
		if !slices.Contains(refused, weak) {
			t.Errorf("%s was not refused (refused: %v)", weak, refused)
		}
	}
	t.Logf("reliability: TLS: 1.0 and 1.1 refused; under TLS 1.2 %d suites accepted %v, %d refused (RSA key exchange, 3DES, RC4, CBC)",
		len(accepted), accepted, len(refused))
}

// testPlainHTTP: an HTTP request sent in clear text to the HTTPS port gets
// 400 from the TLS layer and never reaches a handler.
func testPlainHTTP(t *testing.T, wh *framework.WebhookProcess) {
	before := wh.Metrics(t).Sum("controller_runtime_webhook_requests_total", nil)
	body := framework.AdmissionReview(t, admissionv1.Create, "plain", &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}}, nil)
	for _, path := range []string{framework.MutatePath, framework.ValidatePath} {
		conn, err := net.DialTimeout("tcp", wh.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, wh.Addr(), len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("plain HTTP POST %s: no HTTP answer: %v", path, err)
		}
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(text), "HTTP request to an HTTPS server") {
			t.Errorf("plain HTTP POST %s: %d %q", path, resp.StatusCode, text)
		}
	}
	if after := wh.Metrics(t).Sum("controller_runtime_webhook_requests_total", nil); after != before {
		t.Errorf("plain HTTP reached the admission handlers (requests %v -> %v)", before, after)
	}
}

// testBodyLimit: a body announced larger than the limit is refused with 413
// before a byte of it is read; a dozen 64 MiB bodies of unknown length sent
// at once are cut off at the limit and refused, and the process stays
// within the chart's memory limit and keeps admitting writes.
func testBodyLimit(t *testing.T, s *webhookSuite) {
	wh := s.wh
	// Announced too large: the answer comes without the body being sent.
	conn, err := tls.Dial("tcp", wh.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /validate?timeout=5s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", wh.Addr(), 64<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a 64 MiB Content-Length with no body sent: %v", err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(text), "too large") {
		t.Errorf("64 MiB announced: %d %s", resp.StatusCode, text)
	}

	// Unknown length, 64 MiB each, 12 at once.
	const n = 12
	peakBefore := wh.PeakRSS(t)
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "https://"+wh.Addr()+"/mutate?timeout=10s", io.NopCloser(io.LimitReader(zeroReader{}, 64<<20)))
			req.Header.Set("Content-Type", "application/json")
			outcome := ""
			resp, err := c.Do(req)
			switch {
			case err != nil:
				// The server closed the connection while the rest of the
				// body was on its way.
				outcome = "connection closed by the server while sending"
			default:
				var ar admissionv1.AdmissionReview
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code := resp.StatusCode
				if json.Unmarshal(data, &ar) == nil && ar.Response != nil && ar.Response.Result != nil {
					code = int(ar.Response.Result.Code)
					if ar.Response.Allowed {
						code = 200
					}
				}
				outcome = fmt.Sprintf("refused %d", code)
				if code < 400 || code > 499 {
					outcome = fmt.Sprintf("NOT REFUSED: HTTP %d %s", resp.StatusCode, data)
				}
			}
			mu.Lock()
			outcomes[outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for o := range outcomes {
		if strings.HasPrefix(o, "NOT REFUSED") {
			t.Errorf("a 64 MiB body: %s", o)
		}
	}
	if wh.Exited() {
		t.Fatal("the webhook died")
	}
	peak := wh.PeakRSS(t)
	if peak >= secMemoryLimit {
		t.Errorf("peak RSS %d MiB, above the chart's memory limit of %d MiB", peak>>20, secMemoryLimit>>20)
	}
	// Still serving: a write through the apiserver is admitted.
	s.resetAWSAuth(t, whOpsRoles("deployer"), "")
	t.Logf("reliability: body limit %d MiB: 64 MiB announced -> 413 unread; %d x 64 MiB of unknown length at once -> %v; peak RSS %d MiB (%d MiB before; chart limit %d MiB); still admitting",
		server.MaxRequestBodyBytes>>20, n, outcomes, peak>>20, peakBefore>>20, secMemoryLimit>>20)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// --- RBAC --------------------------------------------------------------------------

// secRendering is one `helm template` output.
type secRendering struct {
	objects []*unstructured.Unstructured
}

func (r secRendering) of(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// secRender runs helm template for the release in secNamespace with extra
// --set values.
func secRender(t *testing.T, helm, chart string, set ...string) secRendering {
	t.Helper()
	args := []string{"template", secRelease, chart, "--namespace", secNamespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r secRendering
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if m == nil {
			continue
		}
		r.objects = append(r.objects, &unstructured.Unstructured{Object: m})
	}
	return r
}

func secConvert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &v); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

// secWantRBAC is what the chart must grant, and nothing more: the guarded
// ConfigMap by name (get and update: the server reads it with a plain get
// and writes with an update carrying the resourceVersion it read), Events
// beside it (the audit records; both Event APIs, as client-go's recorders
// use either), and, when leader election is on, the Lease by name in the
// release namespace (create cannot be limited by name) and Events there
// (leader election records its transitions).
func secWantRBAC(cmNamespace, cmName string, leaderElection bool) map[string][]rbacv1.PolicyRule {
	events := rbacv1.PolicyRule{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}
	want := map[string][]rbacv1.PolicyRule{
		cmNamespace + "/" + secSA: {
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{cmName}, Verbs: []string{"get", "update"}},
			events,
		},
	}
	if leaderElection {
		want[secNamespace+"/"+secSA+"-leader-election"] = []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"aws-auth-webhook"}, Verbs: []string{"get", "update"}},
			events,
		}
	}
	return want
}

// testChartRBAC renders the chart with several value sets and asserts the
// RBAC exactly (no ClusterRole or ClusterRoleBinding; each Role's rules as
// above; each RoleBinding binds its Role to the chart's ServiceAccount
// only; the Deployment runs as that ServiceAccount). Then it asks the live
// apiserver, through SubjectAccessReviews, what the installed RBAC lets
// the ServiceAccount do, and checks that the server running under it did
// its work (resync writes, Events, the Lease) without one "forbidden".
func testChartRBAC(t *testing.T, cp *framework.ControlPlane, s *webhookSuite, helm, chart string, defaults secRendering) {
	for _, tc := range []struct {
		name         string
		rendering    secRendering
		cmNS, cmName string
		leader       bool
	}{
		{"defaults", defaults, "kube-system", "aws-auth", true},
		{"leaderElection=false", secRender(t, helm, chart, "leaderElection=false"), "kube-system", "aws-auth", false},
		{"another ConfigMap", secRender(t, helm, chart, "guardedConfigMap.namespace=auth", "guardedConfigMap.name=mappings", "replicaCount=1"), "auth", "mappings", true},
	} {
		r := tc.rendering
		for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
			if got := r.of(kind); len(got) > 0 {
				t.Errorf("%s: the chart renders a %s (%s): nothing cluster-wide is needed", tc.name, kind, got[0].GetName())
			}
		}
		want := secWantRBAC(tc.cmNS, tc.cmName, tc.leader)
		got := map[string][]rbacv1.PolicyRule{}
		for _, o := range r.of("Role") {
			role := secConvert[rbacv1.Role](t, o)
			got[role.Namespace+"/"+role.Name] = role.Rules
		}
		if !reflect.DeepEqual(got, want) {
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			wantJSON, _ := json.MarshalIndent(want, "", "  ")
			t.Errorf("%s: the chart's Roles:\n%s\nwant exactly:\n%s", tc.name, gotJSON, wantJSON)
		}
		bindings := r.of("RoleBinding")
		if len(bindings) != len(want) {
			t.Errorf("%s: %d RoleBindings, want %d", tc.name, len(bindings), len(want))
		}
		for _, o := range bindings {
			rb := secConvert[rbacv1.RoleBinding](t, o)
			key := rb.Namespace + "/" + rb.RoleRef.Name
			wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: secSA, Namespace: secNamespace}}
			if _, ok := want[key]; !ok || rb.RoleRef.Kind != "Role" || !reflect.DeepEqual(rb.Subjects, wantSubjects) {
				t.Errorf("%s: RoleBinding %s/%s binds %s %s to %+v", tc.name, rb.Namespace, rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name, rb.Subjects)
			}
		}
		for _, o := range r.of("Deployment") {
			d := secConvert[appsv1.Deployment](t, o)
			if d.Spec.Template.Spec.ServiceAccountName != secSA {
				t.Errorf("%s: the Deployment runs as %q", tc.name, d.Spec.Template.Spec.ServiceAccountName)
			}
		}
	}

	// Live: what the installed RBAC allows the ServiceAccount.
	user := "system:serviceaccount:" + secNamespace + ":" + secSA
	type ask struct {
		verb, group, resource, ns, name string
	}
	can := func(a ask) bool {
		sar, err := cp.Clientset.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + secNamespace, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.ns, Name: a.name}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	allowed := []ask{
		{"get", "", "configmaps", "kube-system", "aws-auth"},
		{"update", "", "configmaps", "kube-system", "aws-auth"},
		{"create", "events.k8s.io", "events", "kube-system", ""},
		{"patch", "", "events", "kube-system", "x"},
		{"create", "coordination.k8s.io", "leases", secNamespace, ""},
		{"update", "coordination.k8s.io", "leases", secNamespace, "aws-auth-webhook"},
	}
	denied := []ask{
		{"get", "", "configmaps", "kube-system", "other"},
		{"list", "", "configmaps", "kube-system", ""},
		{"watch", "", "configmaps", "kube-system", ""},
		{"create", "", "configmaps", "kube-system", ""},
		{"delete", "", "configmaps", "kube-system", "aws-auth"},
		{"patch", "", "configmaps", "kube-system", "aws-auth"},
		{"get", "", "configmaps", secNamespace, "aws-auth"},
		{"get", "", "secrets", "kube-system", ""},
		{"list", "", "secrets", secNamespace, ""},
		{"update", "coordination.k8s.io", "leases", "kube-system", "kube-controller-manager"},
		{"update", "coordination.k8s.io", "leases", secNamespace, "other"},
		{"delete", "coordination.k8s.io", "leases", secNamespace, "aws-auth-webhook"},
		{"update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "aws-auth-webhook"},
		{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "aws-auth-webhook"},
		{"create", "", "pods", secNamespace, ""},
		{"create", "", "serviceaccounts/token", secNamespace, secSA},
		{"list", "", "nodes", "", ""},
		{"escalate", "rbac.authorization.k8s.io", "roles", "kube-system", ""},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin"},
	}
	for _, a := range allowed {
		if !can(a) {
			t.Errorf("the ServiceAccount may not %s %s %s %s/%s", a.verb, a.group, a.resource, a.ns, a.name)
		}
	}
	for _, a := range denied {
		if can(a) {
			t.Errorf("the ServiceAccount may %s %s %s %s/%s", a.verb, a.group, a.resource, a.ns, a.name)
		}
	}

	// The server, running under exactly this RBAC, did its work: it holds
	// the Lease, and a re-provisioned permission set is rewritten by its
	// resync loop (a get and an update) with an Event.
	before := s.resetAWSAuth(t, whOpsRoles("deployer"), "")
	newOps, err := s.emu.RotatePermissionSet("Ops")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		return storedARNs(s.get(t))["Ops"] == whARN(newOps), nil
	})
	s.waitEvent(t, before.UID, "ResyncRewrite", func(e eventsv1.Event) bool { return e.Action == "ResyncRewrite" })
	lease := &coordinationv1.Lease{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: secNamespace, Name: "aws-auth-webhook"}, lease); err != nil {
		t.Errorf("the Lease: %v", err)
	}
	if logHas(s.wh.Logs(), "forbidden") {
		t.Errorf("the server was refused something its work needs:\n%s", grepLines(s.wh.Logs(), "forbidden"))
	}
	t.Logf("reliability: RBAC: %d Roles rendered, 0 ClusterRoles; %d permissions checked allowed, %d denied; the server ran its resync, Events and Lease under it with 0 forbidden",
		len(defaults.of("Role")), len(allowed), len(denied))
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// secTokenKubeconfig writes a kubeconfig that authenticates with a bearer
// token.
func secTokenKubeconfig(t *testing.T, cp *framework.ControlPlane, token string) string {
	t.Helper()
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "sa",
		"clusters": []any{map[string]any{"name": "e2e", "cluster": map[string]any{
			"server": cp.Config.Host, "certificate-authority-data": base64.StdEncoding.EncodeToString(cp.Config.CAData)}}},
		"users":    []any{map[string]any{"name": "sa", "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "sa", "context": map[string]any{"cluster": "e2e", "user": "sa"}}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// --- secrets ---------------------------------------------------------------------

// secFront forwards to the emulator and records the signing headers of IAM
// and STS requests.
type secFront struct {
	url     string
	mu      sync.Mutex
	authz   []string
	secToks []string
}

func secStartRecordingFront(t *testing.T, emu *awsemu.Server) *secFront {
	f := &secFront{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.authz = append(f.authz, r.Header.Get("Authorization"))
		f.secToks = append(f.secToks, r.Header.Get("X-Amz-Security-Token"))
		f.mu.Unlock()
		emu.Handler().ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed
	t.Cleanup(func() { srv.Close() })
	f.url = "http://" + ln.Addr().String()
	return f
}

// testNoSecrets: after a run that signed IAM and STS requests with the
// credentials (checked on the wire), talked to the apiserver with the
// bearer token, failed IAM calls (errors logged), refused writes (Events,
// audit log lines) and rewrote aws-auth, and then lost its RoleBinding
// (forbidden errors logged), none of the credentials, nor the first half
// of one, is in the process's log, in any Event in any namespace, or in
// its metrics.
func testNoSecrets(t *testing.T, s *webhookSuite, front *secFront, secrets secSecrets) {
	ctx := context.Background()
	cp := s.cp
	// Refusals: audited with Events and log lines.
	before := s.get(t)
	bad := before.DeepCopy()
	bad.Data["mapRoles"] += "- permissionset: NoSuchSet\n  username: nobody\n"
	if err := cp.Client.Update(ctx, bad); err == nil {
		t.Fatal("an unknown permission set was admitted")
	}
	// IAM fails for a while: SDK errors are logged and audited.
	s.emu.InjectFault("iam:ListRoles", awsemu.Fault{Code: "AccessDenied", HTTPStatus: 403, Message: "not authorized to perform iam:ListRoles"})
	failed0 := s.wh.Metrics(t).Sum("aws_auth_webhook_resync_runs_total", map[string]string{"result": "failed"})
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		return s.wh.Metrics(t).Sum("aws_auth_webhook_resync_runs_total", map[string]string{"result": "failed"}) > failed0, nil
	})
	s.emu.ClearFaults()
	// The RoleBinding in kube-system goes: the next resync write is
	// forbidden and logged with the ServiceAccount's name — which also
	// shows the process talks as the ServiceAccount, with its token.
	if err := cp.Client.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: secSA}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.emu.RotatePermissionSet("Ops"); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		return logHas(s.wh.Logs(), "forbidden", "system:serviceaccount:"+secNamespace+":"+secSA), nil
	})

	// The credentials were used: every IAM and STS request was signed with
	// the access key and carried the session token.
	front.mu.Lock()
	authz, toks := slices.Clone(front.authz), slices.Clone(front.secToks)
	front.mu.Unlock()
	if len(authz) == 0 {
		t.Fatal("no IAM or STS request reached the emulator")
	}
	for i := range authz {
		if !strings.Contains(authz[i], "Credential="+secrets.accessKeyID+"/") || toks[i] != secrets.sessionToken {
			t.Fatalf("request %d was not signed with the test credentials: %q", i, authz[i])
		}
	}

	// Where they must not be.
	places := map[string]string{"the webhook's log": s.wh.Logs()}
	events, err := cp.Clientset.EventsV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(events.Items)
	places[fmt.Sprintf("the %d Events", len(events.Items))] = string(evJSON)
	code, metrics := s.wh.Get(t, s.wh.MetricsAddr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	places["/metrics"] = metrics
	_, readyz := s.wh.Get(t, s.wh.HealthAddr, "/readyz?verbose")
	places["/readyz?verbose"] = readyz
	if !strings.Contains(places["the webhook's log"], "NoSuchSet") || len(events.Items) == 0 {
		t.Fatal("the run left no trace to search")
	}
	for what, secret := range secrets.all() {
		for where, text := range places {
			for _, needle := range []string{secret, secret[:len(secret)/2]} {
				if strings.Contains(text, needle) {
					t.Errorf("the %s (or its first half) is in %s", what, where)
				}
			}
		}
	}
	t.Logf("reliability: secrets: %d IAM/STS requests signed with the test credentials, the bearer token used for every API call; 0 of 4 secrets in %d bytes of log, %d Events, /metrics, /readyz",
		len(authz), len(places["the webhook's log"]), len(events.Items))
}
