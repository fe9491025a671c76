//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// The Helm install: release, namespace and what the chart names after them.
const (
	helmRelease     = "aws-auth-webhook"
	helmNamespace   = "aws-auth-webhook"
	helmFullname    = "aws-auth-webhook" // the release name contains the chart name
	helmCertificate = helmFullname + "-serving"
	helmServiceDNS  = helmFullname + "." + helmNamespace + ".svc"
	helmImageRepo   = "ghcr.io/aws-auth-webhook/aws-auth-webhook" // values.yaml image.repository
	helmPodIP       = "10.244.0.10"
	helmWebhookPort = 9443   // values.yaml webhook.port, the Service's targetPort
	helmMetricsPort = "8080" // values.yaml metricsPort
	helmHealthPort  = "8081" // values.yaml healthProbePort

	helmAccount   = "111122223333"
	helmRegion    = "eu-west-1"
	helmNodeRole  = "arn:aws:iam::" + helmAccount + ":role/eks-node-group-1"
	helmAdminRole = "AWSReservedSSO_Admin_0123456789abcdef"
	helmROnlyRole = "AWSReservedSSO_ReadOnly_fedcba9876543210"
)

// aws-auth as EKS writes it when the first managed node group joins.
const helmEKSMapRoles = `- rolearn: arn:aws:iam::111122223333:role/eks-node-group-1
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
`

var certificateGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

// TestHelmInstall installs the chart with the helm binary into a real
// control plane (etcd, kube-apiserver, kube-controller-manager) with real
// cert-manager (controller and cainjector), inside a network namespace of
// its own, and runs the webhook the way the chart's pod would run: a fake
// kubelet binds the pod, mounts the Secret cert-manager issued, and runs
// bin/aws-auth-webhook with the pod's args as the pod's user, with a
// token of the chart's ServiceAccount (the chart's RBAC is what is
// exercised), on the pod IP. The apiserver reaches it through the chart's
// Service and its EndpointSlice (no kube-proxy, no ClusterIP route), with
// the CA the cainjector put into the webhook configurations. It then shows
// a permission set resolved and a malformed edit refused with an Event,
// a certificate renewal picked up without a restart, and that helm
// uninstall leaves aws-auth alone.
func TestHelmInstall(t *testing.T) {
	framework.RequireNetNSTools(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("this test runs the webhook as the chart's runAsUser with util-linux's setpriv, which is missing")
	}
	assets := framework.RequireAssets(t)
	helm := filepath.Join(helmTool(t, "helm"), "helm")
	certManager := helmTool(t, "cert-manager")
	webhookBin := framework.WebhookBinary(t)
	chart := helmChartDir(t)
	begin := time.Now()
	since := func() time.Duration { return time.Since(begin).Round(time.Millisecond) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// --- control plane, inside its own network namespace ------------------
	c := framework.StartCluster(t, framework.ClusterOptions{Assets: assets})
	c.NS.AddLoopbackAddr(t, helmPodIP+"/32")
	webhookBin = helmReachableBinary(t, webhookBin, c.Dir)
	cs := c.Clientset
	t.Logf("[%v] control plane up (etcd, kube-apiserver, kube-controller-manager) in netns %s", since(), c.NS.Name)

	// The AWS emulator listens on the namespace's loopback, where the
	// webhook process (what IRSA / Pod Identity would give the pod) finds it.
	emu := awsemu.New(awsemu.Config{
		AccountID: helmAccount, Region: helmRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", helmRegion),
			awsemu.SSORole("ReadOnly", "fedcba9876543210", helmRegion),
			{Name: "eks-node-group-1"},
		},
	})
	if err := c.NS.Do(func() error { return emu.StartOn("127.0.0.1:0") }); err != nil {
		t.Fatalf("starting the AWS emulator in the namespace: %v", err)
	}
	t.Cleanup(emu.Close)
	var emuEnv []string
	for k, v := range emu.Env() {
		emuEnv = append(emuEnv, k+"="+v)
	}
	emuEnv = append(emuEnv, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")

	// --- cert-manager: CRDs, controller, cainjector -----------------------
	if out, err := c.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(certManager, "crds")); err != nil {
		t.Fatalf("applying the cert-manager CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io", "crd/certificaterequests.cert-manager.io"); err != nil {
		t.Fatalf("waiting for the cert-manager CRDs: %v\n%s", err, out)
	}
	cmKubeconfig := c.ClientKubeconfig(t, "cert-manager", "cert-manager", "system:masters")
	c.NS.Start(t, c.LogDir, "cert-manager-controller", framework.ProcessOptions{Env: framework.CleanEnv()},
		filepath.Join(certManager, "cert-manager-controller"), "--kubeconfig="+cmKubeconfig)
	c.NS.Start(t, c.LogDir, "cert-manager-cainjector", framework.ProcessOptions{Env: framework.CleanEnv()},
		filepath.Join(certManager, "cert-manager-cainjector"), "--kubeconfig="+cmKubeconfig)
	t.Logf("[%v] cert-manager CRDs established, controller and cainjector started", since())

	// --- aws-auth first, as EKS creates it --------------------------------
	awsAuth, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "aws-auth"},
		Data:       map[string]string{"mapRoles": helmEKSMapRoles},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating kube-system/aws-auth: %v", err)
	}

	// --- the fake kubelet and helm install --wait -------------------------
	kubelet := framework.StartFakeKubelet(t, c, framework.KubeletOptions{
		Namespace: helmNamespace,
		PodIPs:    []string{helmPodIP},
		Binaries:  map[string]string{helmImageRepo: webhookBin},
		Env:       emuEnv,
	})
	helmHome := filepath.Join(c.Dir, "helm")
	helmEnv := framework.CleanEnv("HOME="+helmHome, "HELM_CACHE_HOME="+helmHome+"/cache",
		"HELM_CONFIG_HOME="+helmHome+"/config", "HELM_DATA_HOME="+helmHome+"/data")
	values := filepath.Join(c.Dir, "values.yaml")
	if err := os.WriteFile(values, []byte(`replicaCount: 1
nodeRoleArns:
  - `+helmNodeRole+`
aws:
  region: `+helmRegion+`
resyncInterval: 1h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	helmStart := time.Now()
	type helmResult struct {
		out string
		err error
	}
	helmDone := make(chan helmResult, 1)
	var helmFinished atomic.Bool
	go func() {
		out, err := c.NS.Run(ctx, helmEnv, helm, "install", helmRelease, chart,
			"--kubeconfig="+c.AdminKubeconfig, "--namespace="+helmNamespace, "--create-namespace",
			"--values="+values, "--wait", "--timeout=90s")
		helmFinished.Store(true)
		helmDone <- helmResult{out, err}
	}()
	// Fail at once (not at a timeout) when helm gave up.
	var helmRes *helmResult
	helmCheck := func() error {
		if helmRes == nil && helmFinished.Load() {
			r := <-helmDone
			helmRes = &r
		}
		if helmRes != nil && helmRes.err != nil {
			return fmt.Errorf("helm install failed: %w\n%s", helmRes.err, helmRes.out)
		}
		return nil
	}

	// cert-manager issues the serving certificate (via the chart's
	// self-signed Issuer -> CA Certificate -> CA Issuer).
	var servingSecret *corev1.Secret
	helmWait(t, ctx, "cert-manager to issue the serving certificate", helmCheck, func() (bool, error) {
		crt, err := c.Dynamic.Resource(certificateGVR).Namespace(helmNamespace).Get(ctx, helmCertificate, metav1.GetOptions{})
		if err != nil || !helmCertificateReady(crt) {
			return false, nil
		}
		servingSecret, err = cs.CoreV1().Secrets(helmNamespace).Get(ctx, helmCertificate, metav1.GetOptions{})
		return err == nil, nil
	})
	leaf := helmParseCert(t, servingSecret.Data["tls.crt"])
	caPEM := servingSecret.Data["ca.crt"]
	if !slices.Contains(leaf.DNSNames, helmServiceDNS) {
		t.Errorf("the serving certificate names %v, not the Service %s", leaf.DNSNames, helmServiceDNS)
	}
	t.Logf("[%v] certificate issued %v after helm install started: serial %x, DNS names %v, issuer %q",
		since(), time.Since(helmStart).Round(time.Millisecond), leaf.SerialNumber, leaf.DNSNames, leaf.Issuer.CommonName)

	// The cainjector puts the CA into BOTH webhook configurations.
	var mutating *admissionregistrationv1.MutatingWebhookConfiguration
	var validating *admissionregistrationv1.ValidatingWebhookConfiguration
	helmWait(t, ctx, "the cainjector to inject the CA into both webhook configurations", helmCheck, func() (bool, error) {
		var err error
		if mutating, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, helmFullname, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		if validating, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, helmFullname, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		return len(mutating.Webhooks) == 1 && string(mutating.Webhooks[0].ClientConfig.CABundle) == string(caPEM) &&
			len(validating.Webhooks) == 1 && string(validating.Webhooks[0].ClientConfig.CABundle) == string(caPEM), nil
	})
	t.Logf("[%v] CA injected into the Mutating- and ValidatingWebhookConfiguration %v after helm install started",
		since(), time.Since(helmStart).Round(time.Millisecond))
	helmCompareWebhooks(t, mutating, validating, caPEM)

	helmWait(t, ctx, "helm install --wait", nil, func() (bool, error) {
		return helmFinished.Load(), helmCheck()
	})
	t.Logf("[%v] helm install --wait done in %v:\n%s", since(), time.Since(helmStart).Round(time.Millisecond), helmRes.out)

	// The pod, its process and the EndpointSlice that routes to it.
	pods, err := cs.CoreV1().Pods(helmNamespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("want the chart's one pod, got %d (%v)", len(pods.Items), err)
	}
	pod := pods.Items[0]
	proc := kubelet.Process(pod.Name)
	if proc == nil {
		t.Fatalf("the fake kubelet runs no container for pod %s", pod.Name)
	}
	pid := proc.Pid()
	if uid := helmProcUID(t, pid); uid != "65532" {
		t.Errorf("the webhook runs as uid %s, want the chart's runAsUser 65532", uid)
	}
	helmCheckEndpointSlice(t, ctx, c)
	helmCheckNoClusterIPRoute(t, ctx, c)
	helmCheckLeader(t, ctx, c)

	// The served certificate, as the apiserver sees it.
	served := helmServedCert(t, c, caPEM)
	if served.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("the webhook serves serial %x, the Secret holds %x", served.SerialNumber, leaf.SerialNumber)
	}

	// --- a permission set resolved through apiserver -> Service -> pod -----
	cm := awsAuth.DeepCopy()
	cm.Data["mapRoles"] = helmEKSMapRoles + `# Platform admins sign in through IAM Identity Center.
- permissionset: Admin
  username: "admin:{{SessionName}}"
  groups:
    - system:masters
`
	mutationStart := time.Now()
	stored, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("the permissionset edit was refused: %v\n%s", err, proc.Tail(20))
	}
	t.Logf("[%v] first mutation through the Service answered in %v", since(), time.Since(mutationStart).Round(time.Millisecond))
	wantEntry := "- rolearn: arn:aws:iam::" + helmAccount + ":role/" + helmAdminRole + "\n  permissionset: Admin\n"
	if got := stored.Data["mapRoles"]; !strings.Contains(got, wantEntry) || !strings.Contains(got, helmEKSMapRoles) {
		t.Fatalf("stored mapRoles does not hold the resolved entry %q and the node entry:\n%s", wantEntry, got)
	}
	// The chart's liveness probe (the fake kubelet ran its readiness probe).
	if code := helmGet(t, c, helmHealthPort, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on the pod's health port: %d", code)
	}
	// The pod's process answered the apiserver (scraped on the pod IP at
	// the chart's metrics port): one call per webhook configuration.
	for _, path := range []string{"/mutate", "/validate"} {
		if n := helmMetrics(t, c).Sum("controller_runtime_webhook_requests_total", map[string]string{"webhook": path}); n < 1 {
			t.Errorf("controller_runtime_webhook_requests_total{webhook=%q} = %v: the apiserver's call did not reach the pod", path, n)
		}
	}

	// --- a malformed edit refused, with an Event on aws-auth ----------------
	before := stored
	bad := stored.DeepCopy()
	bad.Data["mapRoles"] = stored.Data["mapRoles"] + `- permissionset: ReadOnly
  username: auditor
   groups: [auditors]
`
	_, err = cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, bad, metav1.UpdateOptions{})
	if err == nil {
		t.Fatal("a malformed mapRoles was stored")
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "aws-auth-webhook.io") ||
		!strings.Contains(err.Error(), "Fix:") {
		t.Errorf("want a denial by the webhook naming the fix, got: %v", err)
	}
	after, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "aws-auth", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("aws-auth changed although the edit was refused (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	helmWait(t, ctx, "the MalformedYAML Event on aws-auth", nil, func() (bool, error) {
		evs, err := cs.EventsV1().Events(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Regarding.UID == awsAuth.UID && e.Reason == "MalformedYAML" && e.Action == "Rejected" {
				if e.Type != corev1.EventTypeWarning {
					t.Errorf("Event type %s, want Warning", e.Type)
				}
				t.Logf("Event on aws-auth: %s %s/%s by %s: %s", e.Type, e.Action, e.Reason, e.ReportingController, e.Note)
				return true, nil
			}
		}
		return false, nil
	})

	// --- certificate renewal, picked up without a restart -------------------
	renewStart := time.Now()
	helmRenew(t, ctx, c)
	var renewed *x509.Certificate
	helmWait(t, ctx, "cert-manager to write the renewed certificate to the Secret", nil, func() (bool, error) {
		s, err := cs.CoreV1().Secrets(helmNamespace).Get(ctx, helmCertificate, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		block, _ := pem.Decode(s.Data["tls.crt"])
		if block == nil {
			return false, nil
		}
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil || crt.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return false, nil
		}
		renewed = crt
		if string(s.Data["ca.crt"]) != string(caPEM) {
			return false, fmt.Errorf("the renewal changed the CA")
		}
		return true, nil
	})
	t.Logf("[%v] certificate renewed in %v: serial %x -> %x", since(), time.Since(renewStart).Round(time.Millisecond),
		leaf.SerialNumber, renewed.SerialNumber)
	helmWait(t, ctx, "the webhook to serve the renewed certificate", nil, func() (bool, error) {
		got, err := helmDialServed(c, caPEM)
		return err == nil && got.SerialNumber.Cmp(renewed.SerialNumber) == 0, nil
	})
	t.Logf("[%v] the webhook serves serial %x, %v after the renewal was triggered", since(), renewed.SerialNumber,
		time.Since(renewStart).Round(time.Millisecond))
	if !proc.Alive() || proc.Pid() != pid || kubelet.Process(pod.Name) != proc {
		t.Fatalf("the webhook process was restarted (pid %d, was %d, alive %v)", proc.Pid(), pid, proc.Alive())
	}
	// And the apiserver's calls keep working with it.
	cm = after.DeepCopy()
	cm.Data["mapRoles"] += `# Auditors.
- permissionset: ReadOnly
  username: "auditor:{{SessionName}}"
  groups: [auditors]
`
	stored, err = cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("an edit after the renewal was refused: %v", err)
	}
	if want := "- rolearn: arn:aws:iam::" + helmAccount + ":role/" + helmROnlyRole + "\n  permissionset: ReadOnly\n"; !strings.Contains(stored.Data["mapRoles"], want) {
		t.Fatalf("after the renewal, stored mapRoles lacks %q:\n%s", want, stored.Data["mapRoles"])
	}
	t.Logf("[%v] same process (pid %d) resolved a permission set through the apiserver with the renewed certificate", since(), pid)
	if strings.Contains(proc.Log(), "forbidden") {
		t.Errorf("the webhook, running as the chart's ServiceAccount, was refused something (the chart's RBAC is short):\n%s",
			helmGrep(proc.Log(), "forbidden"))
	}
	if errs := helmGrep(proc.Log(), `"level":"error"`); errs != "" {
		t.Errorf("the webhook logged errors:\n%s", errs)
	}

	// --- helm uninstall leaves aws-auth alone -----------------------------
	uninstallStart := time.Now()
	if out, err := c.NS.Run(ctx, helmEnv, helm, "uninstall", helmRelease, "--kubeconfig="+c.AdminKubeconfig,
		"--namespace="+helmNamespace, "--wait", "--timeout=60s"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, helmFullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the MutatingWebhookConfiguration is still there after helm uninstall (%v)", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, helmFullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ValidatingWebhookConfiguration is still there after helm uninstall (%v)", err)
	}
	helmWait(t, ctx, "the pod to be gone and its process stopped", nil, func() (bool, error) {
		pods, err := cs.CoreV1().Pods(helmNamespace).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0 && !proc.Alive(), nil
	})
	if err := proc.ExitErr(); err != nil {
		t.Errorf("the webhook did not exit cleanly on SIGTERM: %v", err)
	}
	final, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "aws-auth", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("aws-auth after helm uninstall: %v", err)
	}
	if final.UID != awsAuth.UID || !equality.Semantic.DeepEqual(final.Data, stored.Data) {
		t.Errorf("helm uninstall changed aws-auth:\nbefore: %v\nafter:  %v", stored.Data, final.Data)
	}
	// Nothing is left to block a write (failurePolicy Fail on a dead Service
	// would).
	final.Annotations = map[string]string{"e2e/after-uninstall": "writable"}
	if _, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, final, metav1.UpdateOptions{}); err != nil {
		t.Errorf("aws-auth is not writable after helm uninstall: %v", err)
	}
	t.Logf("[%v] helm uninstall done in %v: aws-auth intact, webhook configurations gone, webhook stopped cleanly",
		since(), time.Since(uninstallStart).Round(time.Millisecond))
}

// helmTool returns the folder e2e/tools/install.sh prints for target (it
// builds nothing that exists; `make e2e` builds them before the tests).
func helmTool(t *testing.T, target string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "tools", "install.sh")
	cmd := exec.Command(script, target)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, target, err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 {
		dir = dir[i+1:]
	}
	return dir
}

// helmReachableBinary returns bin, or a copy of it in dir when the pod's
// non-root user could not execute it where it is (a binary go-built into
// the test's private temporary folder when AWS_AUTH_WEBHOOK_BIN is unset).
func helmReachableBinary(t *testing.T, bin, dir string) string {
	t.Helper()
	reachable := true
	for p := filepath.Dir(bin); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			reachable = false
			break
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	if fi, err := os.Stat(bin); err == nil && reachable && fi.Mode().Perm()&0o005 == 0o005 {
		return bin
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(bin))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s is not reachable by a non-root user; running a copy, %s", bin, dst)
	return dst
}

func helmChartDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "charts", "aws-auth-webhook")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// helmWait polls cond every 100ms for up to 90s (and no longer than ctx),
// failing at once when abort (helm gave up) or cond returns an error.
func helmWait(t *testing.T, ctx context.Context, what string, abort func() error, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, err := cond()
		if err == nil && abort != nil {
			err = abort()
		}
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func helmCertificateReady(crt *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crt.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// helmRenew does what `cmctl renew` does: set the Certificate's Issuing
// condition (reason ManuallyTriggered) through the status subresource.
func helmRenew(t *testing.T, ctx context.Context, c *framework.Cluster) {
	t.Helper()
	certs := c.Dynamic.Resource(certificateGVR).Namespace(helmNamespace)
	crt, err := certs.Get(ctx, helmCertificate, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(crt.Object, "status", "conditions")
	var kept []any
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] != "Issuing" {
			kept = append(kept, c)
		}
	}
	kept = append(kept, map[string]any{
		"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
		"message":            "Certificate re-issuance manually triggered",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		"observedGeneration": crt.GetGeneration(),
	})
	if err := unstructured.SetNestedSlice(crt.Object, kept, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("triggering the renewal of Certificate %s: %v", helmCertificate, err)
	}
}

// helmCompareWebhooks checks that the chart scopes both webhooks exactly as
// the webhook configurations the envtest-based e2e tests register
// (framework.WebhookConfigurations), pointed at the chart's Service.
func helmCompareWebhooks(t *testing.T, m *admissionregistrationv1.MutatingWebhookConfiguration,
	v *admissionregistrationv1.ValidatingWebhookConfiguration, ca []byte) {
	t.Helper()
	wantM, wantV := framework.WebhookConfigurations(framework.WebhookScope{
		ServiceNamespace: helmNamespace, ServiceName: helmFullname, CABundle: ca,
	})
	type scope struct {
		Name                    string
		ClientConfig            admissionregistrationv1.WebhookClientConfig
		Rules                   []admissionregistrationv1.RuleWithOperations
		NamespaceSelector       *metav1.LabelSelector
		MatchConditions         []admissionregistrationv1.MatchCondition
		SideEffects             *admissionregistrationv1.SideEffectClass
		FailurePolicy           *admissionregistrationv1.FailurePolicyType
		TimeoutSeconds          *int32
		AdmissionReviewVersions []string
		Reinvocation            *admissionregistrationv1.ReinvocationPolicyType
	}
	mScope := func(w admissionregistrationv1.MutatingWebhook) scope {
		return scope{w.Name, w.ClientConfig, w.Rules, w.NamespaceSelector, w.MatchConditions, w.SideEffects,
			w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, w.ReinvocationPolicy}
	}
	vScope := func(w admissionregistrationv1.ValidatingWebhook) scope {
		return scope{w.Name, w.ClientConfig, w.Rules, w.NamespaceSelector, w.MatchConditions, w.SideEffects,
			w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, nil}
	}
	if got, want := mScope(m.Webhooks[0]), mScope(wantM.Webhooks[0]); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("the chart's MutatingWebhookConfiguration differs from the one the other e2e tests use:\ngot  %+v\nwant %+v", got, want)
	}
	if got, want := vScope(v.Webhooks[0]), vScope(wantV.Webhooks[0]); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("the chart's ValidatingWebhookConfiguration differs from the one the other e2e tests use:\ngot  %+v\nwant %+v", got, want)
	}
}

// helmCheckEndpointSlice: the EndpointSlice controller published the pod
// IP as a ready endpoint of the Service's https port, at the targetPort.
func helmCheckEndpointSlice(t *testing.T, ctx context.Context, c *framework.Cluster) {
	t.Helper()
	list, err := c.Clientset.DiscoveryV1().EndpointSlices(helmNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + helmFullname,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		var port int32
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == "https" && p.Port != nil {
				port = *p.Port
			}
		}
		for _, e := range s.Endpoints {
			if slices.Contains(e.Addresses, helmPodIP) && ptr.Deref(e.Conditions.Ready, false) && port == helmWebhookPort {
				t.Logf("EndpointSlice %s: %s:%d ready (the apiserver's route to the webhook)", s.Name, helmPodIP, port)
				return
			}
		}
	}
	t.Errorf("no EndpointSlice of Service %s routes https to %s:%d: %+v", helmFullname, helmPodIP, helmWebhookPort, list.Items)
}

// helmCheckNoClusterIPRoute: nothing answers on the Service's ClusterIP in
// the namespace (no kube-proxy), so the apiserver can only have reached the
// webhook through the EndpointSlice.
func helmCheckNoClusterIPRoute(t *testing.T, ctx context.Context, c *framework.Cluster) {
	t.Helper()
	svc, err := c.Clientset.CoreV1().Services(helmNamespace).Get(ctx, helmFullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if conn, err := c.NS.DialContext(dctx, "tcp", net.JoinHostPort(svc.Spec.ClusterIP, "443")); err == nil {
		conn.Close()
		t.Errorf("the Service's ClusterIP %s:443 answers in the namespace; the test would not prove endpoint routing", svc.Spec.ClusterIP)
	} else {
		t.Logf("Service %s: ClusterIP %s:443 is unreachable (%v); only the endpoint route exists", helmFullname, svc.Spec.ClusterIP, err)
	}
}

// helmCheckLeader: the webhook took the leader-election Lease the chart's
// Role names (so the resync loop runs).
func helmCheckLeader(t *testing.T, ctx context.Context, c *framework.Cluster) {
	t.Helper()
	helmWait(t, ctx, "the webhook to hold the leader-election Lease", nil, func() (bool, error) {
		l, err := c.Clientset.CoordinationV1().Leases(helmNamespace).Get(ctx, "aws-auth-webhook", metav1.GetOptions{})
		return err == nil && ptr.Deref(l.Spec.HolderIdentity, "") != "", nil
	})
}

// helmDialServed connects to the pod IP at the targetPort from inside the
// namespace, as the apiserver does, verifying the chain with the injected
// CA and the Service's DNS name, and returns the served leaf.
func helmDialServed(c *framework.Cluster, caPEM []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the injected CA is not PEM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := c.NS.DialContext(ctx, "tcp", net.JoinHostPort(helmPodIP, strconv.Itoa(helmWebhookPort)))
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: helmServiceDNS, MinVersion: tls.VersionTLS12})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func helmServedCert(t *testing.T, c *framework.Cluster, caPEM []byte) *x509.Certificate {
	t.Helper()
	crt, err := helmDialServed(c, caPEM)
	if err != nil {
		t.Fatalf("TLS to %s:%d with the injected CA and name %s: %v", helmPodIP, helmWebhookPort, helmServiceDNS, err)
	}
	return crt
}

// helmMetrics scrapes the pod's /metrics on the pod IP at the chart's
// metrics port, from inside the namespace.
func helmMetrics(t *testing.T, c *framework.Cluster) framework.Samples {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.NS.DialContext}}
	resp, err := hc.Get("http://" + net.JoinHostPort(helmPodIP, helmMetricsPort) + "/metrics")
	if err != nil {
		t.Fatalf("scraping the pod's /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping the pod's /metrics: %d %v", resp.StatusCode, err)
	}
	return framework.ParseMetrics(string(body))
}

// helmGet GETs path on the pod IP at port, from inside the namespace, and
// returns the status code.
func helmGet(t *testing.T, c *framework.Cluster, port, path string) int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.NS.DialContext}}
	resp, err := hc.Get("http://" + net.JoinHostPort(helmPodIP, port) + path)
	if err != nil {
		t.Fatalf("GET %s on the pod: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// helmProcUID is the real uid of a process.
func helmProcUID(t *testing.T, pid int) string {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	return "?"
}

func helmParseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crt
}

func helmGrep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
