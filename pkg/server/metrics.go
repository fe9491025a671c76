package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// resolverCollector exports the AWS resolver's counters on every scrape, so
// IAM trouble (errors, throttling, answers served stale) shows in metrics.
type resolverCollector struct {
	stats func() awsidentity.Stats
	descs map[string]*prometheus.Desc
}

var resolverMetrics = []struct {
	name, help string
	counter    bool
	value      func(awsidentity.Stats) float64
}{
	{"aws_auth_webhook_iam_requests_total", "HTTP requests sent to IAM, retries included.", true, func(s awsidentity.Stats) float64 { return float64(s.IAMRequests) }},
	{"aws_auth_webhook_iam_errors_total", "IAM requests that failed, throttling included.", true, func(s awsidentity.Stats) float64 { return float64(s.IAMErrors) }},
	{"aws_auth_webhook_iam_throttles_total", "IAM requests answered with a throttling error.", true, func(s awsidentity.Stats) float64 { return float64(s.IAMThrottles) }},
	{"aws_auth_webhook_iam_rate_limited_total", "IAM requests refused by the client-side rate limit.", true, func(s awsidentity.Stats) float64 { return float64(s.IAMRateLimited) }},
	{"aws_auth_webhook_sts_requests_total", "HTTP requests sent to STS, retries included.", true, func(s awsidentity.Stats) float64 { return float64(s.STSRequests) }},
	{"aws_auth_webhook_sts_errors_total", "STS requests that failed.", true, func(s awsidentity.Stats) float64 { return float64(s.STSErrors) }},
	{"aws_auth_webhook_permission_set_cache_hits_total", "Permission-set lookups answered from the cache.", true, func(s awsidentity.Stats) float64 { return float64(s.CacheHits) }},
	{"aws_auth_webhook_permission_set_cache_misses_total", "Permission-set lookups that needed an IAM listing.", true, func(s awsidentity.Stats) float64 { return float64(s.CacheMisses) }},
	{"aws_auth_webhook_permission_set_stale_answers_total", "Permission-set lookups answered from the last known listing because IAM failed.", true, func(s awsidentity.Stats) float64 { return float64(s.StaleServes) }},
	{"aws_auth_webhook_sso_role_listings_total", "ListRoles walks started.", true, func(s awsidentity.Stats) float64 { return float64(s.Listings) }},
	{"aws_auth_webhook_sso_role_listing_errors_total", "ListRoles walks that failed.", true, func(s awsidentity.Stats) float64 { return float64(s.ListingErrors) }},
	{"aws_auth_webhook_permission_sets", "Permission sets with an SSO role in the newest listing.", false, func(s awsidentity.Stats) float64 { return float64(s.PermissionSets) }},
	{"aws_auth_webhook_last_sso_role_listing_timestamp_seconds", "When the newest good ListRoles walk finished (0: never).", false, func(s awsidentity.Stats) float64 {
		if s.LastListing.IsZero() {
			return 0
		}
		return float64(s.LastListing.Unix())
	}},
}

func newResolverCollector(stats func() awsidentity.Stats) *resolverCollector {
	c := &resolverCollector{stats: stats, descs: map[string]*prometheus.Desc{}}
	for _, m := range resolverMetrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	return c
}

func (c *resolverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *resolverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, m := range resolverMetrics {
		kind := prometheus.GaugeValue
		if m.counter {
			kind = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[m.name], kind, m.value(s))
	}
}
