package app

import (
	"flag"
	"os"
	"runtime"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/server"
)

// defaultMemProfileRate is the Go runtime's own default: one heap-profile
// sample per 512 KiB allocated.
const defaultMemProfileRate = 512 * 1024

func newServeCommand() *cobra.Command {
	opts := server.Options{}
	var logLevel, logFormat, accessEntriesMode string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook and the resync loop",
		Long: `serve runs the TLS admission webhook for kube-system/aws-auth:

  POST /mutate     resolves permission sets, $ACCOUNTID and pathed role ARNs,
                   adds the node role entry; answers with a JSON patch of the
                   data keys it changed, and warnings
  POST /validate   rejects what the authenticator would drop, DELETE of
                   aws-auth, and edits that would lock out the editor or the
                   nodes (unless the editor is in a --break-glass-group)

It also re-resolves permission sets every --resync-interval (leader-elected)
and rewrites aws-auth when an SSO role's suffix changes. With
--access-entries=plan|sync and --eks-cluster-name it also reports drift of,
or keeps in line, the cluster's EKS access entries (leader-elected, at every
interval and whenever aws-auth changes; see access-entries --help). Every rejection,
break-glass bypass and resync rewrite is recorded as an Event on aws-auth, a
log line and a metric.

The certificate is read from --cert-dir (tls.crt, tls.key) and reloaded when
the files change. Kubernetes access: in-cluster, or --kubeconfig / KUBECONFIG.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := accessEntriesServeOptions(&opts, accessEntriesMode); err != nil {
				return err
			}
			// Checked with the parser the engine judges aws-auth with: a
			// role it would refuse must stop the server here, not fail
			// every write later.
			for _, a := range opts.NodeRoleARNs {
				if _, err := awsidentity.CanonicalNodeRole(a); err != nil {
					return usageErrorf("%v", err)
				}
			}
			level, err := zapcore.ParseLevel(logLevel)
			if err != nil {
				return usageErrorf("--log-level: %v", err)
			}
			log := newLogger(level, logFormat == "console", cmd.ErrOrStderr())
			ctrl.SetLogger(log)
			if opts.PprofAddress != "" {
				// main turned heap-profile sampling off; the profile counts
				// allocations from here on.
				runtime.MemProfileRate = defaultMemProfileRate
			}
			if ml, err := setMemoryLimit(memlimit.FromCgroup); err != nil {
				log.Info("Go memory limit not set: no container memory limit could be read", "reason", err.Error())
			} else {
				log.Info("Go memory limit", "GOMEMLIMIT", ml.Bytes, "source", ml.Source, "containerLimit", ml.Container, "GOGC", ml.GCPercent)
			}
			if opts.LeaderElectionNS == "" {
				opts.LeaderElectionNS = podNamespace()
			}
			restConfig, err := ctrl.GetConfig()
			if err != nil {
				return usageErrorf("Kubernetes configuration: %v", err)
			}
			return server.Run(ctrl.SetupSignalHandler(), restConfig, opts, log)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Port, "port", 9443, "HTTPS port of the webhook server")
	f.StringVar(&opts.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding tls.crt and tls.key")
	f.StringVar(&opts.HealthProbeAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.StringVar(&opts.MetricsAddress, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 disables it)")
	f.StringVar(&opts.PprofAddress, "pprof-bind-address", "", "address of Go's /debug/pprof profiles, for diagnosing CPU and memory (empty: off; bind it to 127.0.0.1 and reach it with kubectl port-forward)")
	f.StringVar(&opts.Namespace, "namespace", "kube-system", "namespace of the ConfigMap to guard")
	f.StringVar(&opts.ConfigMap, "configmap", "aws-auth", "name of the ConfigMap to guard")
	f.StringArrayVar(&opts.NodeRoleARNs, "node-role-arn", nil, "node role ARN to keep mapped (repeatable); default: the role from EC2 instance metadata")
	f.StringArrayVar(&opts.BreakGlassGroups, "break-glass-group", nil, "Kubernetes group whose members may bypass the lockout guard (repeatable; every bypass is audited)")
	f.DurationVar(&opts.ResyncInterval, "resync-interval", 5*time.Minute, "how often to re-resolve permission sets (with jitter)")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader to run the resync loop (keep on when more than one replica may run)")
	f.StringVar(&opts.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	f.StringVar(&opts.Region, "region", "", "AWS region for the STS endpoint (default: from the environment)")
	f.DurationVar(&opts.StartupLookupDeadline, "startup-lookup-timeout", 15*time.Second, "how long the first AWS identity lookup may take before serving starts without it")
	addAccessEntriesServeFlags(f, &opts, &accessEntriesMode)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "json", "json or console")
	// controller-runtime's --kubeconfig flag.
	f.AddGoFlagSet(flag.CommandLine)
	return cmd
}

// podNamespace is the namespace the pod runs in, for the leader election
// Lease; kube-system outside a cluster.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return string(b)
	}
	return "kube-system"
}
