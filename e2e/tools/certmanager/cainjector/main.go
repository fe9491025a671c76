// Command cainjector is a thin cert-manager cainjector for the e2e tests: the
// stock cmd/cainjector is a module the Go proxy does not serve, so this main
// runs cert-manager's public pkg/controller/cainjector on a controller-runtime
// manager. It fills caBundle of webhook configurations, APIServices and CRDs
// annotated cert-manager.io/inject-ca-from (or inject-ca-from-secret).
//
//	cert-manager-cainjector --kubeconfig=KUBECONFIG [--leader-elect=false]
//
// --kubeconfig is controller-runtime's own flag (pkg/client/config registers
// it on the standard flag set), so it is not defined here.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	cmutil "github.com/cert-manager/cert-manager/pkg/util"
)

func main() {
	leaderElect := flag.Bool("leader-elect", false, "hold a Lease before injecting")
	leNS := flag.String("leader-election-namespace", "kube-system", "namespace of the leader election Lease")
	metricsAddr := flag.String("metrics-bind-address", "0", `metrics listen address ("0": off)`)
	klog.InitFlags(nil) // -v etc.
	flag.Parse()

	log := klog.NewKlogr().WithName("cert-manager-cainjector")
	ctrl.SetLogger(log)
	fail := func(err error, msg string) { log.Error(err, msg); klog.Flush(); os.Exit(1) }
	ctx := ctrl.SetupSignalHandler() // SIGTERM / SIGINT

	cfg, err := ctrl.GetConfig() // from --kubeconfig, $KUBECONFIG or in-cluster
	if err != nil {
		fail(err, "loading kubeconfig")
	}
	// Without a user agent the field manager derived from it is empty and
	// server-side apply fails with "fieldManager: Required".
	cfg = cmutil.RestConfigWithUserAgent(cfg, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		// Read Secrets directly instead of caching every Secret in the cluster.
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                       metricsserver.Options{BindAddress: *metricsAddr},
		LeaderElection:                *leaderElect,
		LeaderElectionNamespace:       *leNS,
		LeaderElectionID:              "cert-manager-cainjector-leader-election",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		fail(err, "creating manager")
	}

	// The Certificate data source needs the cert-manager CRDs: wait for them
	// like the stock cainjector does, so the start order does not matter.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fail(err, "creating client")
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := direct.Get(ctx, types.NamespacedName{Name: "certificates.cert-manager.io"}, &apiext.CustomResourceDefinition{})
		return err == nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		fail(err, "waiting for the certificates.cert-manager.io CRD")
	}

	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     true,
			cainjector.CustomResourceDefinitionName:       true,
		},
	})
	if err != nil {
		fail(err, "registering injectors")
	}
	log.Info("running")
	if err := mgr.Start(ctx); err != nil {
		fail(err, "running manager")
	}
}
