package server

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

func TestResolverCollector(t *testing.T) {
	stats := awsidentity.Stats{IAMRequests: 7, StaleServes: 2, PermissionSets: 3, LastListing: time.Unix(1700000000, 0)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newResolverCollector(func() awsidentity.Stats { return stats }))
	want := `
# HELP aws_auth_webhook_iam_requests_total HTTP requests sent to IAM, retries included.
# TYPE aws_auth_webhook_iam_requests_total counter
aws_auth_webhook_iam_requests_total 7
# HELP aws_auth_webhook_permission_set_stale_answers_total Permission-set lookups answered from the last known listing because IAM failed.
# TYPE aws_auth_webhook_permission_set_stale_answers_total counter
aws_auth_webhook_permission_set_stale_answers_total 2
# HELP aws_auth_webhook_permission_sets Permission sets with an SSO role in the newest listing.
# TYPE aws_auth_webhook_permission_sets gauge
aws_auth_webhook_permission_sets 3
# HELP aws_auth_webhook_last_sso_role_listing_timestamp_seconds When the newest good ListRoles walk finished (0: never).
# TYPE aws_auth_webhook_last_sso_role_listing_timestamp_seconds gauge
aws_auth_webhook_last_sso_role_listing_timestamp_seconds 1.7e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"aws_auth_webhook_iam_requests_total", "aws_auth_webhook_permission_set_stale_answers_total",
		"aws_auth_webhook_permission_sets", "aws_auth_webhook_last_sso_role_listing_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(newResolverCollector(func() awsidentity.Stats { return stats })); n != len(resolverMetrics) {
		t.Fatalf("collected %d metrics, want %d", n, len(resolverMetrics))
	}
}
