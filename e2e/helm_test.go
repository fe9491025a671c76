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
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
// cert-manager (controller and cainjector) and the Prometheus Operator's
// CRDs, inside a network namespace of its own, with the image `make image`
// built, pinned by its digest, and the ServiceMonitor, PrometheusRule and
// NetworkPolicy on. A fake kubelet runs the pod the way a container
// runtime would: it unpacks the image's layers for this machine's
// platform, mounts the Secret cert-manager issued and the ServiceAccount
// token inside, and runs the image's entrypoint with the Deployment's
// args, chrooted into the image, as the image's user (the chart's
// runAsUser must be that user), on the pod IP. The apiserver reaches it
// through the chart's Service and its EndpointSlice (no kube-proxy, no
// ClusterIP route), with the CA the cainjector put into the webhook
// configurations. It then shows a permission set resolved and a malformed
// edit refused with an Event, the monitoring objects valid and their
// metrics exported, a certificate renewal picked up without a restart,
// and that helm uninstall leaves aws-auth alone.
func TestHelmInstall(t *testing.T) {
	framework.RequireNetNSTools(t)
	assets := framework.RequireAssets(t)
	helm := filepath.Join(helmTool(t, "helm"), "helm")
	certManager := helmTool(t, "cert-manager")
	promOperator := helmTool(t, "prometheus-operator")
	image := framework.LoadImage(t, framework.WebhookImageLayout(t))
	helmCheckImage(t, image)
	chart := helmChartDir(t)
	begin := time.Now()
	since := func() time.Duration { return time.Since(begin).Round(time.Millisecond) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// --- control plane, inside its own network namespace ------------------
	c := framework.StartCluster(t, framework.ClusterOptions{Assets: assets})
	c.NS.AddLoopbackAddr(t, helmPodIP+"/32")
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
	// The Prometheus Operator's CRDs of the objects the chart creates.
	if out, err := c.Kubectl(ctx, "apply", "--server-side",
		"-f", filepath.Join(promOperator, "crds", "monitoring.coreos.com_servicemonitors.yaml"),
		"-f", filepath.Join(promOperator, "crds", "monitoring.coreos.com_prometheusrules.yaml")); err != nil {
		t.Fatalf("applying the Prometheus Operator CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("waiting for the Prometheus Operator CRDs: %v\n%s", err, out)
	}
	cmKubeconfig := c.ClientKubeconfig(t, "cert-manager", "cert-manager", "system:masters")
	c.NS.Start(t, c.LogDir, "cert-manager-controller", framework.ProcessOptions{Env: framework.CleanEnv()},
		filepath.Join(certManager, "cert-manager-controller"), "--kubeconfig="+cmKubeconfig)
	c.NS.Start(t, c.LogDir, "cert-manager-cainjector", framework.ProcessOptions{Env: framework.CleanEnv()},
		filepath.Join(certManager, "cert-manager-cainjector"), "--kubeconfig="+cmKubeconfig)
	t.Logf("[%v] cert-manager and Prometheus Operator CRDs established, cert-manager's controller and cainjector started", since())

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
		Images:    map[string]*framework.Image{helmImageRepo: image},
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
image:
  digest: `+image.IndexDigest.String()+`
serviceMonitor:
  enabled: true
  labels:
    release: kube-prometheus-stack
prometheusRule:
  enabled: true
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
		if t.Failed() { // the fake kubelet could not run the pod
			return errors.New("the test failed while helm install waits")
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
	helmCheckRunsTheImage(t, c, image, &pod, pid)
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

	// --- the monitoring objects and the NetworkPolicy, on the apiserver ------
	// (after a refusal, so that every metric the alerts watch is exported)
	helmCheckMonitoring(t, ctx, c, helm, helmEnv, chart, &pod)

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
	// Its expiry metric follows the certificate served.
	helmWait(t, ctx, "the certificate expiry metric to follow the renewal", nil, func() (bool, error) {
		return helmMetrics(t, c).Sum("aws_auth_webhook_serving_certificate_not_after_timestamp_seconds", nil) ==
			float64(renewed.NotAfter.Unix()), nil
	})
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

// helmCheckImage: the layout `make image` wrote holds both platforms, with
// the OCI labels, and an image user the kubelet can check is not root.
func helmCheckImage(t *testing.T, image *framework.Image) {
	t.Helper()
	for _, want := range []string{"linux/amd64", "linux/arm64/v8"} {
		if !slices.ContainsFunc(image.Platforms, func(p v1.Platform) bool { return p.String() == want }) {
			t.Errorf("the image index has platforms %v, not %s", image.Platforms, want)
		}
	}
	for _, k := range []string{"org.opencontainers.image.version", "org.opencontainers.image.revision", "org.opencontainers.image.source"} {
		if image.Annotations[k] == "" {
			t.Errorf("the image index lacks the annotation %s: %v", k, image.Annotations)
		}
	}
	uid, gid, ok := strings.Cut(image.Config.User, ":")
	if u, err := strconv.Atoi(uid); err != nil || u == 0 || !ok {
		t.Errorf("the image's user %q is not a numeric non-root uid:gid (a runAsNonRoot pod could not run it)", image.Config.User)
	} else if _, err := strconv.Atoi(gid); err != nil {
		t.Errorf("the image's group in %q is not numeric", image.Config.User)
	}
	t.Logf("image %s (tag %s): index %s, %s image %s, entrypoint %q cmd %q user %s", image.Layout, image.Tag,
		image.IndexDigest, image.Platform, image.Digest, image.Config.Entrypoint, image.Config.Cmd, image.Config.User)
}

// helmCheckRunsTheImage: the pod's process is the image's entrypoint,
// inside the unpacked image, with exactly the Deployment's args, as the
// image's user, which is the chart's runAsUser and runAsGroup.
func helmCheckRunsTheImage(t *testing.T, c *framework.Cluster, image *framework.Image, pod *corev1.Pod, pid int) {
	t.Helper()
	ctr := pod.Spec.Containers[0]
	if want := helmImageRepo + "@" + image.IndexDigest.String(); ctr.Image != want {
		t.Errorf("the pod runs image %s, want %s (image.digest)", ctr.Image, want)
	}
	uid, gid, _, err := framework.ImageUser(filepath.Join(c.Dir, "pods", string(pod.UID), "rootfs"), image.Config.User)
	if err != nil {
		t.Fatal(err)
	}
	sc := pod.Spec.SecurityContext
	if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.RunAsUser, -1) != uid || ptr.Deref(sc.RunAsGroup, -1) != gid {
		t.Errorf("the chart runs the pod as %+v, the image's user is %d:%d (runAsNonRoot, runAsUser and runAsGroup must agree with it)", sc, uid, gid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[0] == "Uid:" && f[1] != strconv.FormatInt(uid, 10) || f[0] == "Gid:" && f[1] != strconv.FormatInt(gid, 10)) {
			t.Errorf("the webhook runs with %s, want the image's user %d:%d", l, uid, gid)
		}
	}
	rootfs := filepath.Join(c.Dir, "pods", string(pod.UID), "rootfs")
	if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err != nil || root != rootfs {
		t.Errorf("the webhook's root is %q (%v), want the unpacked image %s", root, err, rootfs)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if want := filepath.Join(rootfs, image.Config.Entrypoint[0]); err != nil || exe != want {
		t.Errorf("the webhook runs %q (%v), want the image's entrypoint %s", exe, err, want)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, image.Config.Entrypoint...), ctr.Args...)
	if got := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"); !slices.Equal(got, want) {
		t.Errorf("the webhook runs %q, want the entrypoint and the Deployment's args %q", got, want)
	}
	t.Logf("pid %d runs %s from the image (root %s) as %d:%d with the chart's %d args", pid, exe, rootfs, uid, gid, len(ctr.Args))
}

// helmMonitoringGVR are the resources of the chart's monitoring and
// network objects.
var helmMonitoringGVR = map[string]schema.GroupVersionResource{
	"ServiceMonitor": {Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"},
	"PrometheusRule": {Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheusrules"},
	"NetworkPolicy":  {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
}

// helmCheckMonitoring: the ServiceMonitor, PrometheusRule and
// NetworkPolicy helm installed are stored as rendered (nothing pruned by
// the CRD schemas) and pass the apiserver's strict field validation; they
// select the live Service and pod; the rules' metrics are on the running
// image's /metrics. The NetworkPolicy with non-default values is valid too.
func helmCheckMonitoring(t *testing.T, ctx context.Context, c *framework.Cluster, helm string, helmEnv []string, chart string, pod *corev1.Pod) {
	t.Helper()
	out, err := c.NS.Run(ctx, helmEnv, helm, "get", "manifest", helmRelease, "--kubeconfig="+c.AdminKubeconfig, "--namespace="+helmNamespace)
	if err != nil {
		t.Fatalf("helm get manifest: %v\n%s", err, out)
	}
	found := map[string]*unstructured.Unstructured{}
	for _, o := range helmDecode(t, out) {
		gvr, ok := helmMonitoringGVR[o.GetKind()]
		if !ok {
			continue
		}
		found[o.GetKind()] = o
		live, err := c.Dynamic.Resource(gvr).Namespace(helmNamespace).Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s %s is not on the apiserver: %v", o.GetKind(), o.GetName(), err)
			continue
		}
		if err := helmSubset(o.Object["spec"], live.Object["spec"], "spec"); err != nil {
			t.Errorf("%s %s is not stored as rendered (%v): the CRD schema dropped or changed a field", o.GetKind(), o.GetName(), err)
		}
		helmStrictDryRun(t, ctx, c, gvr, o)
	}
	for kind := range helmMonitoringGVR {
		if found[kind] == nil {
			t.Errorf("helm installed no %s", kind)
		}
	}
	if t.Failed() {
		return
	}

	// They select what they are about.
	np := found["NetworkPolicy"]
	sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(pod.Labels)) {
		t.Errorf("the NetworkPolicy selects %v, not the pod %v", sel, pod.Labels)
	}
	svc, err := c.Clientset.CoreV1().Services(helmNamespace).Get(ctx, helmFullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sm := found["ServiceMonitor"]
	sel, _, _ = unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) || sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("the ServiceMonitor (labels %v) selects %v, not the Service %v", sm.GetLabels(), sel, svc.Labels)
	}

	// Each metric the installed rules name is on the running image's
	// /metrics (scraped at the pod IP and metrics port, the ServiceMonitor's
	// target).
	samples := helmMetrics(t, c)
	exported := map[string]bool{}
	for _, s := range samples {
		exported[s.Name] = true
	}
	groups, _, _ := unstructured.NestedSlice(found["PrometheusRule"].Object, "spec", "groups")
	metricName := regexp.MustCompile(`\baws_auth_webhook_[a-z0-9_]+`)
	var alerts []string
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			rule := r.(map[string]any)
			alerts = append(alerts, fmt.Sprint(rule["alert"]))
			for _, name := range metricName.FindAllString(fmt.Sprint(rule["expr"]), -1) {
				if !exported[name] {
					t.Errorf("alert %s uses %s, which the running image does not export", rule["alert"], name)
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Error("the PrometheusRule has no alerts")
	}
	if ready := samples.Sum("aws_auth_webhook_ready", nil); ready != 1 {
		t.Errorf("aws_auth_webhook_ready = %v on a ready pod", ready)
	}

	// The NetworkPolicy as a user on EKS would set it: the control-plane
	// subnets for the webhook port, the monitoring namespace for /metrics.
	custom := helmTemplate(t, helm, chart, "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
		"networkPolicy.webhookFrom[1].ipBlock.cidr=10.0.1.0/24",
		`networkPolicy.metrics.namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=monitoring`)
	for _, o := range custom {
		if o.GetKind() == "NetworkPolicy" {
			helmStrictDryRun(t, ctx, c, helmMonitoringGVR["NetworkPolicy"], o)
		}
	}
	t.Logf("ServiceMonitor, PrometheusRule (%s) and NetworkPolicy stored as rendered, strictly valid; their metrics are exported",
		strings.Join(alerts, ", "))
}

// helmStrictDryRun applies o server-side as a dry run with strict field
// validation: an unknown or duplicate field is an error, not a warning.
func helmStrictDryRun(t *testing.T, ctx context.Context, c *framework.Cluster, gvr schema.GroupVersionResource, o *unstructured.Unstructured) {
	t.Helper()
	body, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Dynamic.Resource(gvr).Namespace(helmNamespace).Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: "e2e-strict-check", Force: ptr.To(true), FieldValidation: "Strict",
	})
	if err != nil {
		t.Errorf("%s %s fails the apiserver's strict validation: %v", o.GetKind(), o.GetName(), err)
	}
}

// helmSubset reports the first place where got lacks or differs from want.
func helmSubset(want, got any, path string) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, have %T", path, got)
		}
		for k, wv := range w {
			if err := helmSubset(wv, g[k], path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want %d items, have %v", path, len(w), got)
		}
		for i := range w {
			if err := helmSubset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return fmt.Errorf("%s: want %v, have %v", path, want, got)
		}
	}
	return nil
}

// helmTemplate renders the chart for the release with extra --set values.
func helmTemplate(t *testing.T, helm, chart string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", helmRelease, chart, "--namespace", helmNamespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return helmDecode(t, string(out))
}

func helmDecode(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding a manifest: %v", err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}
