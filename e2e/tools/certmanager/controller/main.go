// Command controller is a thin cert-manager controller for the e2e tests: the
// stock cmd/controller is a module the Go proxy does not serve, so this main
// wires cert-manager's public pkg/ controllers itself. It runs the Issuer,
// ClusterIssuer, Certificate and CertificateRequest controllers with the
// SelfSigned and CA issuers only (no ACME, Vault, Venafi, shims, metrics).
//
//	cert-manager-controller --kubeconfig=KUBECONFIG [--leader-elect=false]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The issuer backends the Issuer controllers may use.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// The controllers to run; importing their packages registered them.
var controllers = []string{
	issuers.ControllerName, clusterissuers.ControllerName,
	trigger.ControllerName, keymanager.ControllerName, requestmanager.ControllerName,
	issuing.ControllerName, readiness.ControllerName, revisionmanager.ControllerName,
	approver.ControllerName, crselfsigned.CRControllerName, crca.CRControllerName,
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (empty: in-cluster config)")
	clusterNS := flag.String("cluster-resource-namespace", "kube-system", "namespace of the Secrets ClusterIssuers use")
	workers := flag.Int("workers", 5, "workers per controller")
	leaderElect := flag.Bool("leader-elect", false, "hold a Lease before running the controllers")
	leNS := flag.String("leader-election-namespace", "kube-system", "namespace of the leader election Lease")
	klog.InitFlags(nil) // -v etc.
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := klog.NewKlogr().WithName("cert-manager-controller")
	ctx = logf.NewContext(ctx, log)
	fail := func(err error, msg string) { log.Error(err, msg); klog.Flush(); os.Exit(1) }

	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig: *kubeconfig, KubernetesAPIQPS: 20, KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{ClusterResourceNamespace: *clusterNS},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour, // cert-manager's defaults
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		fail(err, "building controller context")
	}
	shared, err := factory.Build() // the informer factories all controllers share
	if err != nil {
		fail(err, "building controller context")
	}

	run := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, name := range controllers {
			c, err := controller.Known()[name](factory)
			if err != nil {
				fail(err, "creating controller "+name)
			}
			wg.Go(func() {
				if err := c.Run(*workers, ctx); err != nil {
					fail(err, "running controller "+name)
				}
			})
		}
		// Informers are started after every controller has registered its own.
		shared.SharedInformerFactory.Start(ctx.Done())
		shared.KubeSharedInformerFactory.Start(ctx.Done())
		shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
		log.Info("running", "controllers", controllers)
		wg.Wait()
	}

	if !*leaderElect {
		run(ctx)
		return
	}
	id, _ := os.Hostname()
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: *leNS, Name: "cert-manager-controller"},
			Client:     shared.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: fmt.Sprintf("%s_%d", id, os.Getpid())},
		},
		LeaseDuration: 60 * time.Second, RenewDeadline: 40 * time.Second, RetryPeriod: 15 * time.Second,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: run,
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					fail(nil, "leader election lost")
				}
			},
		},
	})
}
