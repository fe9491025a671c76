// Package eksaccess reads a cluster's access entries and executes an
// accessentries.Plan through the EKS API (aws-sdk-go-v2/service/eks behind
// a narrow interface). It knows nothing of Kubernetes.
//
// Reading is the expensive part: ListAccessEntries gives only principal
// ARNs, so each entry's type, username, groups, tags and policies take a
// DescribeAccessEntry and a ListAssociatedAccessPolicies. A Client keeps
// what it described for MaxAge and forgets an entry as soon as it writes
// to it, so a pass with nothing to do makes only the listing's calls, and
// an entry is described again before anything is written to it (Sync).
package eksaccess

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	"golang.org/x/sync/errgroup"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// API is the part of the EKS API access entries need; *eks.Client has it.
type API interface {
	DescribeCluster(ctx context.Context, in *eks.DescribeClusterInput, optFns ...func(*eks.Options)) (*eks.DescribeClusterOutput, error)
	ListAccessEntries(ctx context.Context, in *eks.ListAccessEntriesInput, optFns ...func(*eks.Options)) (*eks.ListAccessEntriesOutput, error)
	DescribeAccessEntry(ctx context.Context, in *eks.DescribeAccessEntryInput, optFns ...func(*eks.Options)) (*eks.DescribeAccessEntryOutput, error)
	ListAssociatedAccessPolicies(ctx context.Context, in *eks.ListAssociatedAccessPoliciesInput, optFns ...func(*eks.Options)) (*eks.ListAssociatedAccessPoliciesOutput, error)
	CreateAccessEntry(ctx context.Context, in *eks.CreateAccessEntryInput, optFns ...func(*eks.Options)) (*eks.CreateAccessEntryOutput, error)
	UpdateAccessEntry(ctx context.Context, in *eks.UpdateAccessEntryInput, optFns ...func(*eks.Options)) (*eks.UpdateAccessEntryOutput, error)
	DeleteAccessEntry(ctx context.Context, in *eks.DeleteAccessEntryInput, optFns ...func(*eks.Options)) (*eks.DeleteAccessEntryOutput, error)
	AssociateAccessPolicy(ctx context.Context, in *eks.AssociateAccessPolicyInput, optFns ...func(*eks.Options)) (*eks.AssociateAccessPolicyOutput, error)
	DisassociateAccessPolicy(ctx context.Context, in *eks.DisassociateAccessPolicyInput, optFns ...func(*eks.Options)) (*eks.DisassociateAccessPolicyOutput, error)
	TagResource(ctx context.Context, in *eks.TagResourceInput, optFns ...func(*eks.Options)) (*eks.TagResourceOutput, error)
}

var _ API = (*eks.Client)(nil)

// Options tune a Client. Zero values pick the defaults.
type Options struct {
	// MaxAge is how long a described entry is trusted without being
	// described again; 0 describes every entry on every Observe (the CLI).
	MaxAge time.Duration
	// Concurrency bounds the describe calls in flight; default 4.
	Concurrency int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Client reads and writes one cluster's access entries. It is safe for
// concurrent use, but passes should not overlap (the server runs one at a
// time).
type Client struct {
	api     API
	cluster string
	opts    Options

	mu        sync.Mutex
	partition string
	cache     map[string]cached // by principal ARN
}

type cached struct {
	entry    accessentries.Current
	entryARN string
	readAt   time.Time
}

// New returns a Client for cluster.
func New(api API, cluster string, opts Options) *Client {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{api: api, cluster: cluster, opts: opts, partition: "aws", cache: map[string]cached{}}
}

// Cluster is the cluster's name.
func (c *Client) Cluster() string { return c.cluster }

// AuthenticationMode asks DescribeCluster for the cluster's authentication
// mode (CONFIG_MAP, API_AND_CONFIG_MAP or API).
func (c *Client) AuthenticationMode(ctx context.Context) (string, error) {
	out, err := c.api.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(c.cluster)})
	if err != nil {
		return "", fmt.Errorf("eks:DescribeCluster %s: %w", c.cluster, err)
	}
	if p := strings.SplitN(aws.ToString(out.Cluster.Arn), ":", 3); len(p) == 3 && p[1] != "" {
		c.mu.Lock()
		c.partition = p[1]
		c.mu.Unlock()
	}
	mode := accessentries.AuthModeConfigMap // clusters from before access entries have no accessConfig
	if out.Cluster.AccessConfig != nil && out.Cluster.AccessConfig.AuthenticationMode != "" {
		mode = string(out.Cluster.AccessConfig.AuthenticationMode)
	}
	return mode, nil
}

// Observed is the cluster's entries as read by Observe.
type Observed struct {
	Entries []accessentries.Current
	// FromCache holds the principals answered from the cache.
	FromCache map[string]bool
}

// Observe lists the cluster's entries and describes those not in the
// cache (or older than MaxAge).
func (c *Client) Observe(ctx context.Context) (*Observed, error) {
	var principals []string
	p := eks.NewListAccessEntriesPaginator(c.api, &eks.ListAccessEntriesInput{ClusterName: aws.String(c.cluster), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("eks:ListAccessEntries %s: %w", c.cluster, err)
		}
		principals = append(principals, out.AccessEntries...)
	}
	now := c.opts.Now()
	obs := &Observed{FromCache: map[string]bool{}}
	var toRead []string
	c.mu.Lock()
	listed := map[string]bool{}
	for _, pr := range principals {
		listed[pr] = true
		if e, ok := c.cache[pr]; ok && c.opts.MaxAge > 0 && now.Sub(e.readAt) < c.opts.MaxAge {
			obs.Entries = append(obs.Entries, e.entry)
			obs.FromCache[pr] = true
			continue
		}
		toRead = append(toRead, pr)
	}
	for pr := range c.cache {
		if !listed[pr] {
			delete(c.cache, pr) // deleted by someone else
		}
	}
	c.mu.Unlock()
	read, err := c.describe(ctx, toRead)
	if err != nil {
		return nil, err
	}
	obs.Entries = append(obs.Entries, read...)
	sort.Slice(obs.Entries, func(i, j int) bool { return obs.Entries[i].PrincipalARN < obs.Entries[j].PrincipalARN })
	return obs, nil
}

// describe reads entries (and their policies) and caches them. An entry
// deleted between the listing and its describe is left out.
func (c *Client) describe(ctx context.Context, principals []string) ([]accessentries.Current, error) {
	out := make([]*cached, len(principals))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for i, pr := range principals {
		g.Go(func() error {
			e, err := c.describeOne(gctx, pr)
			out[i] = e
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var entries []accessentries.Current
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range out {
		if e == nil {
			continue
		}
		c.cache[e.entry.PrincipalARN] = *e
		entries = append(entries, e.entry)
	}
	return entries, nil
}

func (c *Client) describeOne(ctx context.Context, principal string) (*cached, error) {
	d, err := c.api.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(principal)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eks:DescribeAccessEntry %s: %w", principal, err)
	}
	e := d.AccessEntry
	cur := accessentries.Current{
		PrincipalARN: aws.ToString(e.PrincipalArn), Type: aws.ToString(e.Type), Username: aws.ToString(e.Username),
		Groups: slices.Clone(e.KubernetesGroups), Tags: e.Tags, CreatedAt: aws.ToTime(e.CreatedAt),
	}
	if cur.Type == accessentries.TypeStandard {
		// Only STANDARD entries can have policies; asking of the others is
		// an error ("can only be performed on Access Entries with a type
		// of STANDARD").
		p := eks.NewListAssociatedAccessPoliciesPaginator(c.api, &eks.ListAssociatedAccessPoliciesInput{
			ClusterName: aws.String(c.cluster), PrincipalArn: aws.String(principal), MaxResults: aws.Int32(100)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if errors.As(err, &nf) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("eks:ListAssociatedAccessPolicies %s: %w", principal, err)
			}
			for _, a := range page.AssociatedAccessPolicies {
				as := accessentries.Association{Policy: policyName(aws.ToString(a.PolicyArn))}
				if a.AccessScope != nil && a.AccessScope.Type == types.AccessScopeTypeNamespace {
					as.Namespaces = slices.Clone(a.AccessScope.Namespaces)
					sort.Strings(as.Namespaces)
				}
				cur.Policies = append(cur.Policies, as)
			}
		}
		sort.Slice(cur.Policies, func(i, j int) bool { return cur.Policies[i].Policy < cur.Policies[j].Policy })
	}
	return &cached{entry: cur, entryARN: aws.ToString(e.AccessEntryArn), readAt: c.opts.Now()}, nil
}

// Forget drops principals from the cache, so the next Observe describes
// them again.
func (c *Client) Forget(principals ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range principals {
		delete(c.cache, p)
	}
}

func policyName(arn string) string {
	return arn[strings.LastIndexByte(arn, '/')+1:]
}

func (c *Client) policyARN(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "arn:" + c.partition + ":" + awsauth.AccessPolicyARNPrefix + name
}

func (c *Client) entryARN(principal string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache[principal].entryARN
}
