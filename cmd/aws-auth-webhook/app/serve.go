package app

import (
	"flag"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/server"
)

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
			log := zap.New(zap.Level(level), zap.UseDevMode(logFormat == "console"), zap.WriteTo(cmd.ErrOrStderr()))
			ctrl.SetLogger(log)
			if limit := setMemoryLimit(); limit > 0 {
				log.Info("Go memory limit set from the container's memory limit", "bytes", limit)
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

// setMemoryLimit gives the Go runtime a soft memory limit of 80% of the
// container's (cgroup v2 memory.max, or v1 memory.limit_in_bytes), unless
// GOMEMLIMIT is set, so that the garbage collector works harder as the
// limit nears instead of letting the heap double past it while a large
// aws-auth is being parsed. It returns the limit set, or 0.
func setMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<50 { // "max", or v1's "unlimited"
			return 0
		}
		limit := n / 10 * 8
		debug.SetMemoryLimit(limit)
		return limit
	}
	return 0
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
