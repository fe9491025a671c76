//go:build e2e

package framework

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// TestFramework checks the harness itself, so the tests built on it can
// trust it: webhook options reach envtest, kubectl runs with stdin and
// impersonation (user, groups and extra, the way the authenticator sets
// them), Events are found, and the emulator answers.
func TestFramework(t *testing.T) {
	none := admissionregistrationv1.SideEffectClassNone
	ignore := admissionregistrationv1.Ignore
	path := "/validate"
	cp := StartControlPlaneWith(t, Options{Webhooks: envtest.WebhookInstallOptions{
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{{
			ObjectMeta: metav1.ObjectMeta{Name: "framework-test"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:                    "framework-test.example.com",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Name: "x", Namespace: "default", Path: &path}},
				Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"framework-test": "never"}},
				SideEffects:             &none,
				FailurePolicy:           &ignore,
				AdmissionReviewVersions: []string{"v1"},
			}},
		}},
	}})

	// The webhook configuration was installed and points at the local server.
	if cp.Webhook.LocalServingPort == 0 || cp.Webhook.LocalServingHost == "" {
		t.Errorf("webhook serving host/port not filled in: %+v", cp.Webhook)
	}
	if _, err := os.Stat(filepath.Join(cp.Webhook.LocalServingCertDir, "tls.crt")); err != nil {
		t.Errorf("webhook serving cert: %v", err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Name: "framework-test"}, vwc); err != nil {
		t.Fatalf("the webhook configuration was not installed: %v", err)
	}
	if u := vwc.Webhooks[0].ClientConfig.URL; u == nil || !strings.Contains(*u, "/validate") {
		t.Errorf("clientConfig not rewritten to the local server: %+v", vwc.Webhooks[0].ClientConfig)
	}

	// kubectl with stdin.
	res := cp.KubectlWith(t, KubectlOptions{Stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin, namespace: default}\ndata: {a: b}\n"},
		"apply", "-f", "-")
	if res.ExitCode != 0 {
		t.Fatalf("apply: %s", res)
	}
	cm := &corev1.ConfigMap{}
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "from-stdin"}, cm); err != nil || cm.Data["a"] != "b" {
		t.Errorf("applied ConfigMap: %v %v", err, cm.Data)
	}
	// A failing command is a result, not a test failure.
	if res := cp.Kubectl(t, "get", "configmap", "does-not-exist"); res.ExitCode == 0 || !strings.Contains(res.Stderr, "NotFound") {
		t.Errorf("missing object: %s", res)
	}

	// Impersonation, as aws-iam-authenticator users look.
	id := Identity{User: "alice", Groups: []string{"developers"}, Extra: map[string][]string{
		"arn":         {"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Dev_1111111111111111/alice"},
		"sessionName": {"alice"},
	}}
	res = cp.KubectlWith(t, KubectlOptions{As: &id}, "auth", "whoami", "-o", "json")
	if res.ExitCode != 0 {
		t.Fatalf("whoami: %s", res)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string              `json:"username"`
				Groups   []string            `json:"groups"`
				Extra    map[string][]string `json:"extra"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &review); err != nil {
		t.Fatalf("whoami output: %v\n%s", err, res.Stdout)
	}
	ui := review.Status.UserInfo
	if ui.Username != "alice" || !slices.Contains(ui.Groups, "developers") || ui.Extra["arn"][0] != id.Extra["arn"][0] {
		t.Errorf("impersonated as %+v, want %+v", ui, id)
	}
	// The same identity through a client: alice has no RBAC, so she is refused.
	err := cp.ClientAs(t, id).Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "from-stdin"}, &corev1.ConfigMap{})
	if err == nil || !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("alice read a ConfigMap without RBAC: %v", err)
	}

	// Events regarding an object.
	rec := cp.EventRecorder(t, "framework-test")
	rec.Eventf(cm, nil, corev1.EventTypeWarning, "Tested", "Test", "note %d", 1)
	WaitFor(t, 10*time.Second, func() (bool, error) {
		evs := cp.Events(t, "default", "from-stdin")
		return len(evs) == 1 && evs[0].Reason == "Tested" && evs[0].Note == "note 1" && evs[0].Regarding.UID == cm.UID, nil
	})

	// The emulator answers the real SDK.
	emu := StartEmulator(t, awsemu.Config{})
	if _, err := emu.AWSConfig(context.Background()); err != nil {
		t.Errorf("emulator config: %v", err)
	}
}
