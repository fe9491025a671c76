//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// requireKubebuilderAssets returns the folder holding kube-apiserver, etcd and
// kubectl (built by e2e/tools/install.sh). The e2e tests never skip for want
// of a control plane: a missing folder is a failure that says how to get one.
func requireKubebuilderAssets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make e2e`, which builds the control plane " +
			"and sets it (by hand: KUBEBUILDER_ASSETS=$(e2e/tools/install.sh all) go test -tags e2e ./e2e/)")
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s lacks %s (%v): run `make e2e` or e2e/tools/install.sh all", dir, bin, err)
		}
	}
	return dir
}

// TestControlPlaneSmoke proves the built binaries work with controller-runtime's
// envtest: start apiserver + etcd, write a ConfigMap with client-go, read it
// back with the built kubectl, stop.
func TestControlPlaneSmoke(t *testing.T) {
	assets := requireKubebuilderAssets(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	env := &envtest.Environment{}
	start := time.Now()
	cfg, err := env.Start()
	// Stop whatever did start, also when Start failed half way.
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("starting envtest from %s: %v", assets, err)
	}
	t.Logf("envtest started in %v", time.Since(start).Round(time.Millisecond))

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Unstamped builds report v0.0.0-master, which breaks Helm's kubeVersion checks.
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if sv.Major != "1" || strings.HasPrefix(sv.GitVersion, "v0.0.0") {
		t.Errorf("apiserver reports version %q (major %q): the build is not version-stamped", sv.GitVersion, sv.Major)
	}
	t.Logf("kube-apiserver %s", sv.GitVersion)

	// The apiserver creates kube-system shortly after "default"; wait for it.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true,
		func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
		t.Fatalf("namespace kube-system never appeared: %v", err)
	}

	const name, key, value = "e2e-smoke", "hello", "from client-go"
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{key: value},
	}
	if _, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ConfigMap: %v", err)
	}

	// A kubeconfig for a user of our own, from the env's authn.
	user, err := env.AddUser(envtest.User{Name: "e2e-smoke", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	kubectl := filepath.Join(assets, "kubectl")
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfigPath,
		"--namespace", metav1.NamespaceSystem, "get", "configmap", name,
		"--output", "jsonpath={.data."+key+"}")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if got := stdout.String(); got != value {
		t.Fatalf("kubectl read data.%s = %q, want %q", key, got, value)
	}
	t.Logf("kubectl read back kube-system/%s", name)
}
