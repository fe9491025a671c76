// Package server assembles `aws-auth-webhook serve`: a controller-runtime
// manager with the TLS webhook server (POST /mutate, /validate), health and
// metrics endpoints, and the leader-elected resync loop, all sharing one
// cached AWS resolver and one auditor.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/admission"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/resync"
)

// Paths the webhook configurations point at.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// Options are the serve flags.
type Options struct {
	Port                  int
	CertDir               string
	HealthProbeAddress    string
	MetricsAddress        string
	PprofAddress          string
	Namespace, ConfigMap  string
	NodeRoleARNs          []string
	BreakGlassGroups      []string
	ResyncInterval        time.Duration
	LeaderElection        bool
	LeaderElectionNS      string
	Region                string
	StartupLookupDeadline time.Duration
	AccessEntries         AccessEntriesOptions
}

// Run serves until ctx ends.
func Run(ctx context.Context, restConfig *rest.Config, opts Options, log logr.Logger) error {
	awsConfig, err := awsidentity.LoadAWSConfig(ctx, opts.Region)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %w", err)
	}
	resolver := awsidentity.New(awsConfig, awsidentity.Options{})
	// IAM/STS requests, errors, throttles, cache hits and stale answers on
	// /metrics.
	audit.Register(metrics.Registry, prometheus.Collector(newResolverCollector(resolver.Stats)))

	// The first identity lookup: account and node role. A failure is said
	// plainly and the server goes on serving what it can.
	lookupCtx, cancel := context.WithTimeout(ctx, opts.StartupLookupDeadline)
	identity := startupLookup(lookupCtx, resolver, opts.NodeRoleARNs, log)
	cancel()

	// The serving certificate, reloaded when cert-manager rewrites it; its
	// validity is exported so that an expiry can be alerted on.
	certs, err := certwatcher.New(filepath.Join(opts.CertDir, "tls.crt"), filepath.Join(opts.CertDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("reading the serving certificate from --cert-dir %s: %w", opts.CertDir, err)
	}
	certs.RegisterCallback(audit.Register(metrics.Registry, newServingCertificate()).observe)

	mgr, err := ctrl.NewManager(restConfig, manager.Options{
		// client-go's scheme, filled when the package loads: a scheme of
		// our own would hold every built-in type a second time.
		Scheme:                        clientgoscheme.Scheme,
		Logger:                        log,
		HealthProbeBindAddress:        opts.HealthProbeAddress,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddress},
		PprofBindAddress:              opts.PprofAddress,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              "aws-auth-webhook",
		LeaderElectionNamespace:       opts.LeaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: webhook.NewServer(webhook.Options{
			Port: opts.Port,
			// TLS 1.2+, AEAD suites, HTTP/1.1; the certificate from certs
			// (controller-runtime then starts no watcher of its own).
			TLSOpts: []func(*tls.Config){hardenTLS, func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }},
		}),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	auditor := audit.New(mgr.GetEventRecorder("aws-auth-webhook"), log.WithName("audit"), metrics.Registry)
	handlers := admission.New(admission.Config{
		Namespace:        opts.Namespace,
		Name:             opts.ConfigMap,
		NodeRoleARNs:     identity.nodeRoles,
		BreakGlassGroups: opts.BreakGlassGroups,
	}, resolver, auditor, log.WithName("admission"))
	srv := mgr.GetWebhookServer()
	// One body budget for both paths: see admissionGuard.
	bodies := semaphore.NewWeighted(maxInFlightBodyBytes)
	idle := newIdleTrimmer(handlers.Forget)
	srv.Register(MutatePath, newAdmissionGuard(&webhook.Admission{Handler: handlers.Mutator()}, bodies, idle))
	srv.Register(ValidatePath, newAdmissionGuard(&webhook.Admission{Handler: handlers.Validator()}, bodies, idle))
	if err := mgr.Add(everyReplica{manager.RunnableFunc(idle.Start)}); err != nil {
		return err
	}

	loop := resync.New(mgr.GetClient(), mgr.GetAPIReader(), resolver, auditor, log.WithName("resync"), resync.Options{
		Namespace:    opts.Namespace,
		Name:         opts.ConfigMap,
		Interval:     opts.ResyncInterval,
		NodeRoleARNs: identity.nodeRoles,
	})
	if err := mgr.Add(loop); err != nil {
		return err
	}
	if err := mgr.Add(certs); err != nil { // watches on every replica
		return err
	}
	if err := addAccessEntries(mgr, restConfig, awsConfig, resolver, auditor, opts, identity.nodeRoles, log); err != nil {
		return err
	}
	// Warm the permission-set cache so the first admission makes no AWS call.
	// On every replica: the admission handlers run on all of them.
	if err := mgr.Add(everyReplica{manager.RunnableFunc(func(ctx context.Context) error {
		if err := resolver.Refresh(ctx); err != nil {
			log.Error(err, "could not list the SSO roles at start; permission sets resolve once IAM answers")
		}
		return nil
	})}); err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	readyChecks := []readyCheck{{"webhook", srv.StartedChecker()}, {"identity", identity.check}}
	for _, c := range readyChecks {
		if err := mgr.AddReadyzCheck(c.name, c.check); err != nil {
			return err
		}
	}
	audit.Register(metrics.Registry, prometheus.Collector(newReadiness(readyChecks)))
	log.Info("serving", "port", opts.Port, "namespace", opts.Namespace, "configmap", opts.ConfigMap,
		"nodeRoles", identity.nodeRoles, "account", identity.account, "leaderElection", opts.LeaderElection,
		"accessEntries", string(opts.AccessEntries.Mode), "eksCluster", opts.AccessEntries.ClusterName)
	return mgr.Start(ctx)
}

// everyReplica marks a runnable that runs whether or not this replica is
// the leader. controller-runtime runs a runnable that does not say so on the
// leader only: the cache warm-up once was one, so a replica that was not the
// leader made an IAM call on its first admission, and kept a cold cache
// until it became the leader.
type everyReplica struct{ manager.RunnableFunc }

var _ manager.LeaderElectionRunnable = everyReplica{}

func (everyReplica) NeedLeaderElection() bool { return false }

// identityState is the outcome of the startup lookup.
type identityState struct {
	account   string
	nodeRoles []string
	reason    error
	// accounts reads the cluster's AWS identity (the resolver's Account,
	// which remembers a success for the life of the process).
	accounts interface {
		Account(ctx context.Context) (awsauth.Account, error)
	}
	// log says why the replica is not ready (the probe's answer withholds
	// the reason): when it stops being ready, then every
	// notReadyLogInterval while that lasts.
	log       logr.Logger
	mu        sync.Mutex
	failing   bool
	lastNoted time.Time
}

const notReadyLogInterval = 5 * time.Minute

// readyzLookupTimeout bounds the identity lookup a readiness probe makes
// while the identity is still unknown (kubelet's probe gives up after 1s by
// default; a slower answer is a failure too).
const readyzLookupTimeout = 900 * time.Millisecond

// check is the readiness check: not ready while the cluster's AWS identity
// (sts:GetCallerIdentity) cannot be read — the credentials do not work, or
// STS does not answer — with the reason. Once read it is remembered, so a
// later STS outage does not take a serving replica out; until then every
// probe asks again, so the replica becomes ready as soon as STS answers.
func (s *identityState) check(r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyzLookupTimeout)
	defer cancel()
	if _, err := s.accounts.Account(ctx); err != nil {
		err = fmt.Errorf("the AWS identity cannot be read, so $ACCOUNTID and node roles from instance metadata cannot be resolved: %w", err)
		s.mu.Lock()
		if now := time.Now(); !s.failing || now.Sub(s.lastNoted) >= notReadyLogInterval {
			s.failing, s.lastNoted = true, now
			s.log.Error(err, "not ready")
		}
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	if s.failing {
		s.failing = false
		s.log.Info("ready: the AWS identity was read")
	}
	s.mu.Unlock()
	return nil
}

func startupLookup(ctx context.Context, resolver *awsidentity.Resolver, explicit []string, log logr.Logger) *identityState {
	s := &identityState{accounts: resolver, log: log}
	if acct, err := resolver.Account(ctx); err != nil {
		s.reason = err
		log.Error(err, "cannot tell the cluster's AWS account; $ACCOUNTID and node roles from instance metadata cannot be resolved until STS answers")
	} else {
		s.account = acct.Partition + ":" + acct.ID
	}
	roles, err := resolver.NodeRoleARNs(ctx, explicit)
	if err != nil {
		s.reason = errors.Join(s.reason, err)
		log.Error(err, "the node role is unknown, so the node entry is not kept in aws-auth")
	}
	s.nodeRoles = roles
	return s
}
