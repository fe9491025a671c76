package server

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/go-logr/logr"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accesssync"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/eksaccess"
)

// AccessEntriesOptions are the serve flags of access entries.
type AccessEntriesOptions struct {
	Mode        accesssync.Mode // off (default), plan or sync
	ClusterName string          // the EKS cluster
	Adopt       bool            // take over unmanaged entries aws-auth asks for
	// MaxAge is how long an access entry read from EKS is trusted before
	// it is described again (writes always describe it first); default 1h.
	MaxAge time.Duration
}

// addAccessEntries adds the leader-elected access-entries reconciler to
// mgr, unless the mode is off.
func addAccessEntries(mgr manager.Manager, restConfig *rest.Config, awsConfig aws.Config, resolver *awsidentity.Resolver,
	auditor *audit.Auditor, opts Options, nodeRoles []string, log logr.Logger) error {
	ae := opts.AccessEntries
	if ae.Mode == "" || ae.Mode == accesssync.ModeOff {
		return nil
	}
	if ae.ClusterName == "" {
		return accesssync.ErrNoCluster
	}
	if ae.MaxAge <= 0 {
		ae.MaxAge = time.Hour
	}
	cs, err := corev1client.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubernetes client for the aws-auth watch: %w", err)
	}
	client := eksaccess.New(eks.NewFromConfig(awsConfig), ae.ClusterName, eksaccess.Options{MaxAge: ae.MaxAge})
	rec := accesssync.New(client, mgr.GetAPIReader(), cs, resolver, auditor, log.WithName("access-entries"), accesssync.Options{
		Mode:         ae.Mode,
		Namespace:    opts.Namespace,
		Name:         opts.ConfigMap,
		Interval:     opts.ResyncInterval,
		NodeRoleARNs: nodeRoles,
		Adopt:        ae.Adopt,
	})
	return mgr.Add(rec)
}
