// Package awsidentity answers the AWS questions the aws-auth engine asks
// (pkg/awsauth.Resolver): the cluster's partition and account (STS), the
// role ARN of each IAM Identity Center permission set (one paginated IAM
// ListRoles walk, cached), and the node role (flags or EC2 instance
// metadata). It knows nothing of Kubernetes.
//
// All AWS clients are built from an aws.Config, so the SDK's default
// credential chain (env, shared config, IRSA web identity, EKS Pod Identity)
// and its standard endpoint settings (AWS_ENDPOINT_URL_IAM,
// AWS_ENDPOINT_URL_STS, AWS_EC2_METADATA_SERVICE_ENDPOINT) apply unchanged.
package awsidentity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// Defaults for Options fields left zero.
const (
	DefaultTTL                  = 5 * time.Minute
	DefaultNegativeTTL          = 30 * time.Second
	DefaultSize                 = 10000
	DefaultCallTimeout          = 10 * time.Second
	DefaultRetryMaxAttempts     = 5
	DefaultRetryMaxBackoff      = 5 * time.Second
	DefaultIAMRequestsPerSecond = 2.0
	DefaultIAMBurst             = 10
	DefaultIMDSTimeout          = 2 * time.Second

	// DefaultRegion is used when no region is configured anywhere (flag,
	// AWS_REGION / AWS_DEFAULT_REGION, shared config). IAM is a global
	// service: in the "aws" partition every region reaches the same IAM
	// endpoint, and us-east-1 is IAM's home region, so any region works for
	// IAM and us-east-1 is the natural one. The region does pick the
	// partition of the endpoints, though: a cluster in aws-cn or aws-us-gov
	// must have a region from its partition (IRSA injects AWS_REGION;
	// otherwise set it or pass one). We deliberately do not ask IMDS for
	// the region: pods often cannot reach it and the lookup can stall.
	DefaultRegion = "us-east-1"

	listRolesMaxItems = 1000 // the largest page IAM allows
)

// Options tunes a Resolver. Zero values pick the defaults above.
type Options struct {
	// TTL is how long a ListRoles result is trusted before a request for a
	// permission set triggers a new listing. Default 5m.
	TTL time.Duration
	// NegativeTTL is how long "this permission set does not exist" is
	// trusted, so a typo does not cause a full listing per request while a
	// just-created permission set is still found soon. Default 30s.
	NegativeTTL time.Duration
	// Size bounds how many permission-set names the LRU holds. Default
	// 10000, above any realistic number of permission sets in an account.
	Size int
	// CallTimeout is the deadline of every AWS API call (one ListRoles page,
	// one GetCallerIdentity), retries included. Default 10s.
	CallTimeout time.Duration
	// RetryMaxAttempts and RetryMaxBackoff configure the SDK standard
	// retryer used for IAM and STS (exponential backoff with full jitter;
	// retries Throttling, 5xx and connection errors). Defaults 5 and 5s.
	RetryMaxAttempts int
	RetryMaxBackoff  time.Duration
	// IAMRequestsPerSecond and IAMBurst rate-limit every HTTP request to
	// IAM (retries included) on the client side, so a burst of work cannot
	// spend the account's shared IAM budget. Defaults 2/s, burst 10 (a
	// listing of up to 10,000 SSO roles never waits).
	IAMRequestsPerSecond float64
	IAMBurst             int
	// IMDSTimeout bounds the whole node-role lookup through EC2 instance
	// metadata, token request included. Default 2s.
	IMDSTimeout time.Duration
	// Clock times cache expiry and the client-side IAM rate limit; tests
	// step a fake one. Default the real clock.
	Clock clock.Clock
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.RetryMaxAttempts <= 0 {
		o.RetryMaxAttempts = DefaultRetryMaxAttempts
	}
	if o.RetryMaxBackoff <= 0 {
		o.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	if o.IAMRequestsPerSecond <= 0 {
		o.IAMRequestsPerSecond = DefaultIAMRequestsPerSecond
	}
	if o.IAMBurst <= 0 {
		o.IAMBurst = DefaultIAMBurst
	}
	if o.IMDSTimeout <= 0 {
		o.IMDSTimeout = DefaultIMDSTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// LoadAWSConfig loads the SDK's default configuration (env, shared config,
// IRSA web identity, EKS Pod Identity, AWS_ENDPOINT_URL_* ...). region may
// be empty: then the SDK's own sources decide, and DefaultRegion is the last
// resort (see its comment for why that is safe for IAM). On a system with no
// CA bundle, compiled-in roots verify AWS's TLS (ensureCARoots).
func LoadAWSConfig(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	ensureCARoots()
	opts := []func(*config.LoadOptions) error{config.WithDefaultRegion(DefaultRegion)}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	opts = append(opts, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

type iamAPI interface {
	ListRoles(ctx context.Context, in *iam.ListRolesInput, optFns ...func(*iam.Options)) (*iam.ListRolesOutput, error)
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
}

type stsAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Resolver implements awsauth.Resolver against IAM and STS, plus node-role
// discovery. It is safe for concurrent use.
type Resolver struct {
	opts    Options
	cfg     aws.Config
	iam     iamAPI
	sts     stsAPI
	limiter *rate.Limiter

	// cache maps permission-set name -> role ARN from the newest listing.
	// Entries carry their own expiry (from opts.Clock, so tests can move
	// time); Size bounds memory. (An LRU with expiry of its own keeps each
	// entry in an expiry bucket too: a third more memory per entry, for
	// entries that are dropped with their listing anyway.)
	//
	// Negative caching needs no entries: a name absent from a listing
	// younger than NegativeTTL is known not to exist. So a typo (or a flood
	// of distinct typos) costs at most one listing per NegativeTTL, and a
	// permission set created after a listing is found once that window has
	// passed.
	cache *lru.Cache[string, cacheEntry]
	// last is the newest good listing. It lives outside the TTL cache so an
	// IAM outage can always be answered from it (stale).
	last    atomic.Pointer[listing]
	cacheMu sync.Mutex // serializes writes to cache so an old listing never overwrites a newer one

	account atomic.Pointer[awsauth.Account]
	flights singleflight.Group

	// roles caches iam:GetRole answers by lowercased role name (rolefacts.go).
	roles *lru.Cache[string, getRoleAnswer]

	imdsOptFns []func(*imds.Options) // test hook

	// lastIAMErr and lastSTSErr hold the error of the newest HTTP attempt
	// that failed with an answer or a connection error, until an attempt
	// succeeds (nil then); an attempt running, or cut off by our own
	// deadline without an answer, leaves the one before (attempts are
	// serialized by the singleflight). When a
	// call runs out of time while the SDK backs off between retries, the
	// SDK's error only says "context deadline exceeded"; the message then
	// adds what IAM or STS last answered (Throttling, ServiceUnavailable,
	// ...), so that an operator reads why, not just that it took too long.
	lastIAMErr, lastSTSErr atomic.Pointer[error]

	st counters
}

// withLastAnswer adds the last failed attempt's error to err when the call
// (ctx) timed out or was cancelled. That is judged by ctx, not by err
// alone: when the deadline passes while the SDK waits for a retry token,
// its error ("failed to get rate limit token, canceled, ...") does not
// wrap the deadline.
func withLastAnswer(ctx context.Context, err error, last *atomic.Pointer[error], service string) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		if ctx.Err() == nil {
			return err
		}
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	if p := last.Load(); p != nil {
		return fmt.Errorf("%w (the last %s answer was: %v)", err, service, *p) //nolint:errorlint // the earlier answer is context; the cause is the deadline
	}
	return err
}

var _ awsauth.Resolver = (*Resolver)(nil)

type cacheEntry struct {
	arn     string
	expires time.Time
}

// listing is the result of one complete ListRoles walk. Immutable.
type listing struct {
	arns       map[string]string   // permission set -> canonical role ARN
	existing   []string            // sorted permission-set names
	duplicates map[string][]string // permission set -> every ARN that claimed it (only when > 1)
	facts      map[string]roleFact // lowercased role name -> its ARN with path and CreateDate (rolefacts.go)
	fetchedAt  time.Time
}

// New builds a Resolver whose IAM and STS clients come from cfg.
func New(cfg aws.Config, opts Options) *Resolver {
	opts = opts.withDefaults()
	r := &Resolver{
		opts:    opts,
		cfg:     cfg,
		limiter: rate.NewLimiter(rate.Limit(opts.IAMRequestsPerSecond), opts.IAMBurst),
	}
	// lru.New fails only for a size ≤ 0, which withDefaults rules out.
	r.cache, _ = lru.New[string, cacheEntry](opts.Size)
	r.roles, _ = lru.New[string, getRoleAnswer](opts.Size)
	newRetryer := func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = opts.RetryMaxAttempts
			so.MaxBackoff = opts.RetryMaxBackoff
		})
	}
	r.iam = iam.NewFromConfig(cfg, func(o *iam.Options) {
		o.Retryer = newRetryer()
		o.APIOptions = append(o.APIOptions, r.iamAttemptMiddleware)
	})
	r.sts = sts.NewFromConfig(cfg, func(o *sts.Options) {
		o.Retryer = newRetryer()
		o.APIOptions = append(o.APIOptions, r.stsAttemptMiddleware)
	})
	return r
}

// iamAttemptMiddleware runs once per HTTP attempt (it sits after the SDK's
// retry middleware): it applies the client-side rate limit and counts.
func (r *Resolver) iamAttemptMiddleware(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("awsidentity.IAMAttempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if err := r.waitIAMTurn(ctx); err != nil {
				r.st.iamRateLimited.Add(1)
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("client-side IAM rate limit: %w", err)
			}
			r.st.iamRequests.Add(1)
			out, md, err := next.HandleFinalize(ctx, in)
			if err == nil {
				r.lastIAMErr.Store(nil)
			} else {
				r.st.iamErrors.Add(1)
				if isThrottle(err) {
					r.st.iamThrottles.Add(1)
				}
				if ctx.Err() == nil || isAnswer(err) { // an answer (or a failed connection), not our own deadline
					r.lastIAMErr.Store(&err)
				}
			}
			return out, md, err
		}), "Retry", middleware.After)
}

// waitIAMTurn waits, on the resolver's clock, until the client-side rate
// limit lets one more IAM request go; like rate.Limiter.Wait, it fails at
// once when the wait would outlast ctx.
func (r *Resolver) waitIAMTurn(ctx context.Context) error {
	now := r.opts.Clock.Now()
	res := r.limiter.ReserveN(now, 1)
	if !res.OK() {
		return fmt.Errorf("rate: Wait(n=1) exceeds limiter's burst %d", r.limiter.Burst())
	}
	delay := res.DelayFrom(now)
	if delay <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
		res.CancelAt(now)
		return fmt.Errorf("rate: Wait(n=1) would exceed context deadline")
	}
	t := r.opts.Clock.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		res.CancelAt(r.opts.Clock.Now())
		return ctx.Err()
	}
}

func (r *Resolver) stsAttemptMiddleware(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("awsidentity.STSAttempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			r.st.stsRequests.Add(1)
			out, md, err := next.HandleFinalize(ctx, in)
			if err == nil {
				r.lastSTSErr.Store(nil)
			} else {
				r.st.stsErrors.Add(1)
				if ctx.Err() == nil || isAnswer(err) {
					r.lastSTSErr.Store(&err)
				}
			}
			return out, md, err
		}), "Retry", middleware.After)
}

// isAnswer reports whether err carries what AWS answered: an answer that
// arrives as the deadline passes is still the last answer.
func isAnswer(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae)
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	_, ok := retry.DefaultThrottleErrorCodes[ae.ErrorCode()]
	return ok
}

// Account returns the partition and account ID of the credentials in use,
// from STS GetCallerIdentity's Arn. A success is cached for the life of the
// process; a failure is not.
func (r *Resolver) Account(ctx context.Context) (awsauth.Account, error) {
	if a := r.account.Load(); a != nil {
		return *a, nil
	}
	ch := r.flights.DoChan("sts:GetCallerIdentity", func() (any, error) {
		if a := r.account.Load(); a != nil {
			return *a, nil
		}
		// Detached from the first caller: others may be waiting on this call.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.CallTimeout)
		defer cancel()
		out, err := r.sts.GetCallerIdentity(cctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return nil, fmt.Errorf("sts:GetCallerIdentity: %w", withLastAnswer(cctx, err, &r.lastSTSErr, "STS"))
		}
		a, err := accountFromARN(aws.ToString(out.Arn))
		if err != nil {
			return nil, fmt.Errorf("sts:GetCallerIdentity: %w", err)
		}
		r.account.Store(&a)
		return a, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return awsauth.Account{}, res.Err
		}
		return res.Val.(awsauth.Account), nil
	case <-ctx.Done():
		return awsauth.Account{}, fmt.Errorf("sts:GetCallerIdentity: %w", withLastAnswer(ctx, context.Cause(ctx), &r.lastSTSErr, "STS"))
	}
}

func accountFromARN(s string) (awsauth.Account, error) {
	partition, account, err := iamarn.Account(s)
	if err != nil {
		return awsauth.Account{}, fmt.Errorf("caller ARN: %w", err)
	}
	return awsauth.Account{Partition: partition, ID: account}, nil
}

// PermissionSetRoles resolves permission-set names to the canonical ARNs of
// their IAM Identity Center roles. When every name has a fresh cache entry
// it makes no AWS call. Otherwise one ListRoles walk (shared by all
// concurrent callers) answers every name at once.
//
// If IAM cannot be asked (error, or ctx ends while the walk is running):
//   - with a previous good listing, the answer comes from it and Stale says
//     why; err stays nil unless a requested name is missing from that old
//     listing (and not freshly known to be missing), because an old listing
//     cannot prove a name does not exist;
//   - with no previous listing, err is non-nil and ARNs is empty.
//
// The walk itself is detached from ctx (each page has its own CallTimeout),
// so a caller that gives up does not cancel it for others, and its result
// still warms the cache.
func (r *Resolver) PermissionSetRoles(ctx context.Context, names []string) (awsauth.PermissionSetLookup, error) {
	now := r.opts.Clock.Now()
	seen := r.last.Load()
	if seen != nil {
		if ans, ok := r.fromCache(seen, names, now); ok {
			r.st.cacheHits.Add(1)
			return ans, nil
		}
	}
	r.st.cacheMisses.Add(1)

	l, err := r.list(ctx, seen, false)
	if err == nil {
		r.remember(l, names)
		return answer(l, names), nil
	}

	prev := r.last.Load()
	if prev == nil {
		return awsauth.PermissionSetLookup{ARNs: map[string]string{}}, err
	}
	r.st.staleServes.Add(1)
	ans := answer(prev, names)
	ans.Stale = err
	var unknown []string
	for _, n := range names {
		if _, ok := ans.ARNs[n]; !ok && !r.knownMissing(prev, n, now) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return ans, fmt.Errorf("cannot tell whether permission set(s) %s exist: the last good IAM listing is from %s and IAM cannot be asked now: %w",
			strings.Join(unknown, ", "), prev.fetchedAt.UTC().Format(time.RFC3339), err)
	}
	return ans, nil
}

// fromCache answers names from fresh cache entries; ok is false on any miss.
func (r *Resolver) fromCache(l *listing, names []string, now time.Time) (awsauth.PermissionSetLookup, bool) {
	if !now.Before(l.fetchedAt.Add(r.opts.TTL)) {
		return awsauth.PermissionSetLookup{}, false
	}
	arns := make(map[string]string, len(names))
	for _, n := range names {
		if e, ok := r.cache.Get(n); ok && now.Before(e.expires) {
			arns[n] = e.arn
			continue
		}
		if !r.knownMissing(l, n, now) {
			return awsauth.PermissionSetLookup{}, false
		}
	}
	return awsauth.PermissionSetLookup{ARNs: arns, Existing: existingFor(l, arns, names), Ambiguous: ambiguous(l, names)}, true
}

// existingFor is the Existing of an answer: every permission set with a
// role, for an error about a name that has none; when every name has a
// role nothing reads it, and copying thousands of names per admission was
// a tenth of the webhook's allocations.
func existingFor(l *listing, arns map[string]string, names []string) []string {
	if len(arns) == len(names) {
		return nil
	}
	return slices.Clone(l.existing)
}

// knownMissing reports whether name is absent from l and l is recent
// enough (NegativeTTL) to trust that.
func (r *Resolver) knownMissing(l *listing, name string, now time.Time) bool {
	_, listed := l.arns[name]
	return !listed && now.Before(l.fetchedAt.Add(r.opts.NegativeTTL))
}

func answer(l *listing, names []string) awsauth.PermissionSetLookup {
	arns := make(map[string]string, len(names))
	for _, n := range names {
		if a, ok := l.arns[n]; ok {
			arns[n] = a
		}
	}
	return awsauth.PermissionSetLookup{ARNs: arns, Existing: existingFor(l, arns, names), Ambiguous: ambiguous(l, names)}
}

// ambiguous returns the claiming roles of each name more than one SSO role
// claims, or nil.
func ambiguous(l *listing, names []string) map[string][]string {
	var out map[string][]string
	for _, n := range names {
		if all := l.duplicates[n]; len(all) > 1 {
			if out == nil {
				out = map[string][]string{}
			}
			out[n] = slices.Clone(all)
		}
	}
	return out
}

// Refresh forces a new ListRoles walk (joining one already running) and
// replaces the cache with its result. The resync loop calls it.
func (r *Resolver) Refresh(ctx context.Context) error {
	_, err := r.list(ctx, nil, true)
	return err
}

// list runs (or joins) the one ListRoles walk and waits for it or for ctx.
// seen is the newest listing the caller saw before deciding it needed a new
// one: if a newer one has been installed since (a walk finished between the
// caller's cache miss and now), it is used instead of walking again.
// Refresh forces a walk.
func (r *Resolver) list(ctx context.Context, seen *listing, force bool) (*listing, error) {
	ch := r.flights.DoChan("iam:ListRoles", func() (any, error) {
		if !force {
			if cur := r.last.Load(); cur != nil && cur != seen {
				return cur, nil
			}
		}
		return r.walk(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*listing), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("iam:ListRoles: gave up waiting for the listing: %w", withLastAnswer(ctx, context.Cause(ctx), &r.lastIAMErr, "IAM"))
	}
}

type candidate struct {
	arn      string
	roleName string
	created  time.Time
}

// better is the rule for two roles claiming the same permission set (the
// same name under /aws-reserved/sso.amazonaws.com/ and
// /aws-reserved/sso.amazonaws.com/<region>/, e.g. after Identity Center
// moved region, or leftovers of a removed instance): the most recently
// created role wins, because IAM Identity Center creates the role when it
// (re)provisions the assignment, so the newest is the live one; on equal
// creation times the lexicographically smallest role name wins, so the
// answer never depends on listing order.
func better(a, b candidate) bool {
	if !a.created.Equal(b.created) {
		return a.created.After(b.created)
	}
	return a.roleName < b.roleName
}

// walk lists every role under SSORolePathPrefix, following Marker to the
// end, and installs the result as the newest listing.
func (r *Resolver) walk(ctx context.Context) (*listing, error) {
	r.st.listings.Add(1)
	l, err := r.walkPages(ctx)
	if err != nil {
		r.st.listingErrors.Add(1)
		return nil, err
	}
	r.install(l)
	return l, nil
}

func (r *Resolver) walkPages(ctx context.Context) (*listing, error) {
	best := map[string]candidate{}
	claims := map[string][]string{}
	facts := map[string]roleFact{}
	seenMarkers := map[string]bool{}
	var marker *string
	for page := 1; ; page++ {
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		out, err := r.iam.ListRoles(cctx, &iam.ListRolesInput{
			PathPrefix: aws.String(SSORolePathPrefix),
			MaxItems:   aws.Int32(listRolesMaxItems),
			Marker:     marker,
		})
		if err != nil {
			err = withLastAnswer(cctx, err, &r.lastIAMErr, "IAM") // before cancel: it asks whether cctx timed out
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("iam:ListRoles (page %d): %w", page, err)
		}
		for _, role := range out.Roles {
			name := aws.ToString(role.RoleName)
			ps, _, ok := iamarn.ParseSSORoleName(name)
			if !ok {
				continue
			}
			if p := aws.ToString(role.Path); p != "" && !strings.HasPrefix(p, SSORolePathPrefix) {
				continue
			}
			roleARN, err := r.canonicalFromListed(ctx, aws.ToString(role.Arn), name)
			if err != nil {
				return nil, err
			}
			c := candidate{arn: roleARN, roleName: name, created: aws.ToTime(role.CreateDate)}
			facts[strings.ToLower(name)] = roleFact{arn: aws.ToString(role.Arn), created: c.created}
			claims[ps] = append(claims[ps], roleARN)
			if prev, ok := best[ps]; !ok || better(c, prev) {
				best[ps] = c
			}
		}
		if !out.IsTruncated {
			break
		}
		m := aws.ToString(out.Marker)
		if m == "" {
			return nil, fmt.Errorf("iam:ListRoles (page %d): truncated response without a Marker", page)
		}
		if seenMarkers[m] {
			return nil, fmt.Errorf("iam:ListRoles (page %d): Marker repeats; refusing to loop", page)
		}
		seenMarkers[m] = true
		marker = aws.String(m)
	}

	l := &listing{
		arns:      make(map[string]string, len(best)),
		existing:  make([]string, 0, len(best)),
		facts:     make(map[string]roleFact, len(facts)),
		fetchedAt: r.opts.Clock.Now(),
	}
	keep := compactStrings(best, facts)
	for name, f := range facts {
		l.facts[keep(name)] = roleFact{arn: keep(f.arn), created: f.created}
	}
	for ps, c := range best {
		ps := keep(ps)
		l.arns[ps] = keep(c.arn)
		l.existing = append(l.existing, ps)
		if len(claims[ps]) > 1 {
			if l.duplicates == nil {
				l.duplicates = map[string][]string{}
			}
			all := slices.Clone(claims[ps])
			sort.Strings(all)
			l.duplicates[ps] = all
		}
	}
	sort.Strings(l.existing)
	return l, nil
}

// compactStrings copies the strings a listing keeps (until the next one)
// into one allocation and returns the copy of each. Kept as the SDK
// decoded them, thousands of small strings pin the pages of the decoding's
// garbage around them long after it is collected.
func compactStrings(best map[string]candidate, facts map[string]roleFact) func(string) string {
	var size int
	for ps, c := range best {
		size += len(ps) + len(c.arn)
	}
	for name, f := range facts {
		size += len(name) + len(f.arn)
	}
	var b strings.Builder
	b.Grow(size)
	at := make(map[string]int, 2*(len(best)+len(facts)))
	add := func(s string) {
		if _, ok := at[s]; !ok {
			at[s] = b.Len()
			b.WriteString(s)
		}
	}
	for ps, c := range best {
		add(ps)
		add(c.arn)
	}
	for name, f := range facts {
		add(name)
		add(f.arn)
	}
	all := b.String()
	return func(s string) string {
		i, ok := at[s]
		if !ok {
			return s
		}
		return all[i : i+len(s)]
	}
}

// canonicalFromListed builds the canonical ARN of a listed role: partition
// and account from the role's own ARN (falling back to STS if IAM sent
// something unparseable), the path dropped.
func (r *Resolver) canonicalFromListed(ctx context.Context, roleARN, roleName string) (string, error) {
	if partition, account, err := iamarn.Account(roleARN); err == nil {
		return iamarn.RoleARN(partition, account, roleName), nil
	}
	acct, err := r.Account(ctx)
	if err != nil {
		return "", fmt.Errorf("role %q: IAM returned ARN %q and the account is unknown: %w", roleName, roleARN, err)
	}
	return iamarn.RoleARN(acct.Partition, acct.ID, roleName), nil
}

// install makes l the newest listing and rebuilds the cache from it.
func (r *Resolver) install(l *listing) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if prev := r.last.Load(); prev != nil && prev.fetchedAt.After(l.fetchedAt) {
		return
	}
	r.last.Store(l)
	r.cache.Purge()
	exp := l.fetchedAt.Add(r.opts.TTL)
	for ps, a := range l.arns {
		r.cache.Add(ps, cacheEntry{arn: a, expires: exp})
	}
}

// remember re-adds the requested names found in l, so they are the most
// recently used in the LRU even when Size is below the number of permission
// sets; unless a newer listing has replaced l meanwhile.
func (r *Resolver) remember(l *listing, names []string) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.last.Load() != l {
		return
	}
	for _, n := range names {
		if a, ok := l.arns[n]; ok {
			r.cache.Add(n, cacheEntry{arn: a, expires: l.fetchedAt.Add(r.opts.TTL)})
		}
	}
}

// Duplicates returns, from the newest listing, every permission set that
// more than one role claims, with all the claiming ARNs (sorted). The
// resolver answers with the one picked by the documented rule (newest
// CreateDate, then smallest role name); callers may want to warn.
func (r *Resolver) Duplicates() map[string][]string {
	l := r.last.Load()
	if l == nil || len(l.duplicates) == 0 {
		return nil
	}
	out := make(map[string][]string, len(l.duplicates))
	for k, v := range l.duplicates {
		out[k] = slices.Clone(v)
	}
	return out
}

// Stats is a snapshot of the resolver's counters, for metrics. Counters
// only grow; gauges describe the newest listing.
type Stats struct {
	CacheHits   uint64 // PermissionSetRoles calls answered without IAM
	CacheMisses uint64 // PermissionSetRoles calls that needed a listing
	StaleServes uint64 // answers served from an old listing because IAM failed

	Listings      uint64 // ListRoles walks started (Refresh included)
	ListingErrors uint64 // walks that failed

	IAMRequests    uint64 // HTTP requests sent to IAM, retries included
	IAMErrors      uint64 // IAM requests that failed (throttles included)
	IAMThrottles   uint64 // IAM requests answered with a throttling error
	IAMRateLimited uint64 // requests refused by the client-side rate limit (deadline too near)

	STSRequests uint64 // HTTP requests sent to STS, retries included
	STSErrors   uint64

	PermissionSets          int       // permission sets in the newest listing
	DuplicatePermissionSets int       // of which claimed by more than one role
	LastListing             time.Time // when the newest good listing finished; zero if none
}

// Stats returns a snapshot of the counters.
func (r *Resolver) Stats() Stats {
	s := Stats{
		CacheHits:      r.st.cacheHits.Load(),
		CacheMisses:    r.st.cacheMisses.Load(),
		StaleServes:    r.st.staleServes.Load(),
		Listings:       r.st.listings.Load(),
		ListingErrors:  r.st.listingErrors.Load(),
		IAMRequests:    r.st.iamRequests.Load(),
		IAMErrors:      r.st.iamErrors.Load(),
		IAMThrottles:   r.st.iamThrottles.Load(),
		IAMRateLimited: r.st.iamRateLimited.Load(),
		STSRequests:    r.st.stsRequests.Load(),
		STSErrors:      r.st.stsErrors.Load(),
	}
	if l := r.last.Load(); l != nil {
		s.PermissionSets = len(l.existing)
		s.DuplicatePermissionSets = len(l.duplicates)
		s.LastListing = l.fetchedAt
	}
	return s
}

type counters struct {
	cacheHits, cacheMisses, staleServes                  atomic.Uint64
	listings, listingErrors                              atomic.Uint64
	iamRequests, iamErrors, iamThrottles, iamRateLimited atomic.Uint64
	stsRequests, stsErrors                               atomic.Uint64
}
