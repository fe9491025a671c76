//go:build e2e

// Command demo runs aws-auth-webhook for real on this machine: etcd and
// kube-apiserver (through envtest, from the cached binaries), the AWS
// emulator with a few SSO permission sets, and `aws-auth-webhook serve`
// registered as the cluster's admission webhook, the way the chart
// registers it. It writes a kubeconfig, prints the commands to try, and
// stops everything on Ctrl-C.
//
// Ctrl-C in a terminal interrupts the whole foreground job: with the
// output piped (make demo | tee log) tee is gone at once, and a write to
// its pipe would kill this process (SIGPIPE) before it stopped etcd and
// kube-apiserver, which envtest runs in process groups of their own where
// Ctrl-C does not reach. So SIGPIPE is ignored, and on SIGINT, SIGTERM or
// SIGHUP every child is stopped first — the webhook, kube-apiserver, etcd,
// the AWS emulator — and only then is anything printed; the exit status
// is 0.
//
//	make demo            (or: go run -tags e2e ./e2e/demo)
//	go run -tags e2e ./e2e/demo --check   # start, prove a permissionset resolves, stop
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

const initialRoles = `# Node role, as EKS writes it.
- rolearn: arn:aws:iam::111122223333:role/eks-node-group-a
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
`

func main() {
	check := flag.Bool("check", false, "start everything, make one kubectl edit that adds a permission set, verify it resolved, and stop")
	bin := flag.String("bin", "bin", "folder holding the aws-auth-webhook binary (make build)")
	flag.Parse()
	signal.Ignore(syscall.SIGPIPE) // a write to a closed pipe fails instead
	// Further signals while stopping are absorbed here: a second Ctrl-C
	// does not cut the stopping short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err := run(ctx, *bin, *check) // returns once everything it started is stopped
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo: stopped: the webhook, kube-apiserver, etcd and the AWS emulator are down")
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo: while stopping:", err)
		}
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin string, check bool) (err error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make demo`, which builds the control plane once")
	}
	binary, err := filepath.Abs(filepath.Join(bin, "aws-auth-webhook"))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aws-auth-webhook-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// AWS: an account with three SSO permission sets and a node role.
	emu := awsemu.New(withAccessEntries(awsemu.Config{AccountID: "111122223333", Region: "eu-west-1", NodeRoleName: "eks-node-group-a", Roles: []awsemu.Role{
		awsemu.SSORole("Admin", awsemu.RandomSuffix(), "eu-west-1"),
		awsemu.SSORole("ReadOnly", awsemu.RandomSuffix(), "eu-west-1"),
		awsemu.SSORole("Developer", awsemu.RandomSuffix(), "eu-west-1"),
	}}))
	if err := emu.Start(); err != nil {
		return err
	}
	defer emu.Close()

	// The control plane, with the webhook configurations the chart ships.
	mutating, validating := framework.WebhookConfigurations(framework.WebhookScope{})
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
		},
	}
	fmt.Println("starting etcd and kube-apiserver ...")
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // whatever did start
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping kube-apiserver and etcd: %w", stopErr))
		}
	}()
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfigBytes, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kubeconfigBytes, 0o600); err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		_, err := clientset.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return errors.New("kube-system did not appear")
	}

	// The webhook, on envtest's serving port and certificate.
	wh := env.WebhookInstallOptions
	health, err := freeAddr()
	if err != nil {
		return err
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	logFile := filepath.Join(work, "webhook.log")
	logs, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer logs.Close()
	cmd := exec.Command(binary, "serve", "--kubeconfig="+kubeconfig,
		fmt.Sprintf("--port=%d", wh.LocalServingPort), "--cert-dir="+wh.LocalServingCertDir,
		"--health-probe-bind-address="+health, "--metrics-bind-address="+metrics,
		"--leader-elect=false", "--resync-interval=10s", "--break-glass-group=platform:break-glass",
		"--log-format=console")
	cmd.Args = append(cmd.Args, accessEntriesArgs()...)
	cmd.Env = append(os.Environ(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "KUBECONFIG=")
	for k, v := range emu.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (run make build): %w", binary, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitFor(ctx, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return fmt.Errorf("the webhook did not get ready; its log is %s", logFile)
	}

	// aws-auth as EKS creates it; from now on every write goes through
	// the webhook.
	if _, err := clientset.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "aws-auth", Namespace: "kube-system"},
		Data:       map[string]string{"mapRoles": initialRoles},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating aws-auth: %w", err)
	}

	kubectl := filepath.Join(assets, "kubectl")
	if check {
		if err := smokeCheck(ctx, kubectl, kubeconfig, work); err != nil {
			return err
		}
		return checkAccessEntries(ctx, emu)
	}

	fmt.Printf(`
aws-auth-webhook is guarding kube-system/aws-auth on a local control plane.
AWS is emulated: account 111122223333, permission sets Admin, ReadOnly, Developer.

In another terminal:

  export KUBECONFIG=%[1]s PATH=%[2]s:$PATH

  # add an entry such as
  #   - permissionset: Developer
  #     username: dev:{{SessionName}}
  #     groups: [developers]
  # save, and see the rolearn the webhook added:
  kubectl edit configmap aws-auth -n kube-system
  kubectl get configmap aws-auth -n kube-system -o yaml

  # re-provision the permission set (new role suffix); within 10s the
  # resync loop rewrites aws-auth:
  curl -s -X POST '%[3]s/_emulator/rotate?permissionSet=Developer'; echo

  # rejections, rewrites and access-entry changes are Events on aws-auth:
  kubectl -n kube-system events --for configmap/aws-auth
%[6]s
Webhook log: %[4]s   metrics: http://%[5]s/metrics
Press Ctrl-C to stop everything.
`, kubeconfig, assets, emu.URL(), logFile, metrics, accessEntriesInstructions(emu, binary))
	<-ctx.Done()
	return nil // the deferred stops run before anything more is printed
}

// smokeCheck does what the printed instructions suggest, with KUBE_EDITOR
// standing in for the person, and checks the stored result.
func smokeCheck(ctx context.Context, kubectl, kubeconfig, work string) error {
	editor := filepath.Join(work, "editor.sh")
	script := "#!/bin/sh\nprintf '    - permissionset: Developer\\n      username: dev:{{SessionName}}\\n      groups: [developers]\\n' > \"$1.add\"\n" +
		"sed -i '/- system:nodes/r '\"$1.add\" \"$1\"\n"
	if err := os.WriteFile(editor, []byte(script), 0o755); err != nil {
		return err
	}
	edit := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "edit", "configmap", "aws-auth", "-n", "kube-system")
	edit.Env = append(os.Environ(), "KUBE_EDITOR="+editor)
	if out, err := edit.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl edit: %w\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "configmap", "aws-auth", "-n", "kube-system",
		"-o", "jsonpath={.data.mapRoles}").Output()
	if err != nil {
		return fmt.Errorf("kubectl get: %w", err)
	}
	if !strings.Contains(string(out), "rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Developer_") {
		return fmt.Errorf("the permission set was not resolved; aws-auth holds:\n%s", out)
	}
	fmt.Printf("demo check passed: kubectl edit added permissionset Developer and aws-auth now holds\n%s", out)
	return nil
}

func waitFor(ctx context.Context, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
