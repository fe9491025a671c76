//go:build e2e

// Package framework is the harness of the e2e tests: a real kube-apiserver +
// etcd (controller-runtime's envtest, from the binaries e2e/tools/install.sh
// builds), the AWS emulator, kubectl, and small helpers to wait and to read
// Events. Everything it starts is stopped by t.Cleanup, also when a test
// fails; cleanups run last-registered-first, so anything a test starts after
// the control plane (a manager, a webhook server) stops before it.
package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Options tune StartControlPlaneWith. The zero value is what
// StartControlPlane uses.
type Options struct {
	// Webhooks is passed to envtest as is: put Mutating/Validating
	// WebhookConfigurations in it and envtest points their clientConfig at
	// https://LocalServingHost:LocalServingPort with a CA it generates; read
	// the filled-in host, port and CertDir from ControlPlane.Webhook after
	// the start.
	Webhooks envtest.WebhookInstallOptions
	// APIServerArgs are extra kube-apiserver flags (name without "--"),
	// e.g. {"advertise-address": "127.0.0.1", "endpoint-reconciler-type":
	// "none"} inside a network namespace.
	APIServerArgs map[string]string
	// AdminUser names the admin user of Kubeconfig and Kubectl (group
	// system:masters); default "e2e-admin".
	AdminUser string
}

// ControlPlane is a running kube-apiserver + etcd.
type ControlPlane struct {
	// Env is the envtest environment (for what this type does not wrap).
	Env *envtest.Environment
	// Config is an admin rest.Config (system:masters).
	Config *rest.Config
	// Client is an uncached controller-runtime client with client-go's
	// scheme (core, events, admissionregistration, ...).
	Client client.Client
	// Clientset is a client-go clientset for the same admin.
	Clientset kubernetes.Interface
	// Webhook is envtest's webhook options after the start:
	// LocalServingHost, LocalServingPort, LocalServingCertDir.
	Webhook *envtest.WebhookInstallOptions
	// Assets is the KUBEBUILDER_ASSETS folder (kube-apiserver, etcd, kubectl).
	Assets string

	adminUser  string
	dir        string // lives as long as the control plane
	kubeOnce   sync.Once
	kubeconfig string
	kubeErr    error
}

// RequireAssets returns KUBEBUILDER_ASSETS, the folder with kube-apiserver,
// etcd and kubectl. The e2e tests never skip for want of a control plane: a
// missing folder fails the test and says how to get one.
func RequireAssets(t testing.TB) string {
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

var setLoggerOnce sync.Once

// StartControlPlane starts kube-apiserver + etcd, waits for kube-system and
// stops them when the test ends.
func StartControlPlane(t testing.TB) *ControlPlane {
	t.Helper()
	return StartControlPlaneWith(t, Options{})
}

// StartControlPlaneWith is StartControlPlane with options (webhooks, extra
// apiserver flags).
func StartControlPlaneWith(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	assets := RequireAssets(t)
	setLoggerOnce.Do(func() {
		// controller-runtime complains (with a stack trace) when nothing set
		// its logger; send its logs to stderr instead.
		ctrllog.SetLogger(funcr.New(func(prefix, args string) {
			fmt.Fprintln(os.Stderr, prefix, args)
		}, funcr.Options{}))
	})

	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: opts.Webhooks,
	}
	if len(opts.APIServerArgs) > 0 {
		args := env.ControlPlane.GetAPIServer().Configure()
		for k, v := range opts.APIServerArgs {
			args.Set(k, v)
		}
	}
	start := time.Now()
	cfg, err := env.Start()
	// Stop whatever did start, also when Start failed half way.
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("starting kube-apiserver + etcd from %s: %v", assets, err)
	}

	cp := &ControlPlane{Env: env, Config: cfg, Webhook: &env.WebhookInstallOptions, Assets: assets,
		adminUser: opts.AdminUser, dir: t.TempDir()}
	if cp.adminUser == "" {
		cp.adminUser = "e2e-admin"
	}
	if cp.Client, err = client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme}); err != nil {
		t.Fatalf("controller-runtime client: %v", err)
	}
	if cp.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatalf("clientset: %v", err)
	}

	// The apiserver creates kube-system shortly after it is ready.
	WaitFor(t, 30*time.Second, func() (bool, error) {
		_, err := cp.Clientset.CoreV1().Namespaces().Get(context.Background(), metav1.NamespaceSystem, metav1.GetOptions{})
		return err == nil, nil
	})
	t.Logf("control plane up in %v (%s)", time.Since(start).Round(time.Millisecond), cfg.Host)
	return cp
}

// Identity is a user to impersonate: what an authenticator such as
// aws-iam-authenticator would have put in userInfo.
type Identity struct {
	User   string
	UID    string
	Groups []string
	// Extra is userInfo.extra, e.g. {"arn": {"arn:aws:sts::...:assumed-role/x/alice"}}.
	Extra map[string][]string
}

// KubectlArgs are the kubectl flags that impersonate id.
func (id Identity) KubectlArgs() []string {
	var args []string
	if id.User != "" {
		args = append(args, "--as="+id.User)
	}
	if id.UID != "" {
		args = append(args, "--as-uid="+id.UID)
	}
	for _, g := range id.Groups {
		args = append(args, "--as-group="+g)
	}
	for k, vs := range id.Extra {
		for _, v := range vs {
			args = append(args, "--as-user-extra="+k+"="+v)
		}
	}
	return args
}

// ConfigAs returns a copy of the admin rest.Config that impersonates id.
func (cp *ControlPlane) ConfigAs(id Identity) *rest.Config {
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: id.User, UID: id.UID, Groups: id.Groups, Extra: id.Extra}
	return cfg
}

// ClientAs returns an uncached controller-runtime client that impersonates id.
func (cp *ControlPlane) ClientAs(t testing.TB, id Identity) client.Client {
	t.Helper()
	c, err := client.New(cp.ConfigAs(id), client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatalf("client as %s: %v", id.User, err)
	}
	return c
}

// Kubeconfig returns the path of a kubeconfig file for the admin user
// (group system:masters, so it may impersonate anyone). It is written once
// per control plane, into a folder removed when the control plane's test
// ends.
func (cp *ControlPlane) Kubeconfig(t testing.TB) string {
	t.Helper()
	cp.kubeOnce.Do(func() {
		user, err := cp.Env.AddUser(envtest.User{Name: cp.adminUser, Groups: []string{"system:masters"}}, nil)
		if err != nil {
			cp.kubeErr = fmt.Errorf("adding user %s: %w", cp.adminUser, err)
			return
		}
		data, err := user.KubeConfig()
		if err != nil {
			cp.kubeErr = fmt.Errorf("kubeconfig of %s: %w", cp.adminUser, err)
			return
		}
		path := filepath.Join(cp.dir, "kubeconfig")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			cp.kubeErr = err
			return
		}
		cp.kubeconfig = path
	})
	if cp.kubeErr != nil {
		t.Fatalf("kubeconfig: %v", cp.kubeErr)
	}
	return cp.kubeconfig
}

// EventRecorder returns an events.k8s.io/v1 recorder (the interface
// mgr.GetEventRecorder returns) that writes Events through the admin
// clientset, reporting as controller. Its broadcaster is shut down when the
// test ends.
func (cp *ControlPlane) EventRecorder(t testing.TB, controller string) recorder.EventRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cp.Clientset.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		t.Fatalf("starting the event broadcaster: %v", err)
	}
	t.Cleanup(func() {
		b.Shutdown()
		cancel()
	})
	rec, ok := b.NewRecorder(clientgoscheme.Scheme, controller).(recorder.EventRecorder)
	if !ok {
		t.Fatal("client-go's events recorder no longer implements AnnotatedEventf")
	}
	return rec
}
