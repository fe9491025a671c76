package awsemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/smithy-go"
)

const testCluster = "demo"

func startEKS(t *testing.T, mode string) (*Server, *eks.Client) {
	t.Helper()
	s, cfg := startEmulator(t, Config{
		Region: "eu-west-1",
		Roles: []Role{
			SSORole("Admin", "0123456789abcdef", "eu-west-1"),
			{Name: "eks-node"},
			{Name: "deployer", Path: "/ci/"},
		},
		Users:       []User{{Name: "alice", Path: "/people/"}},
		EKSClusters: []EKSCluster{{Name: testCluster, AuthenticationMode: mode}},
	})
	return s, eks.NewFromConfig(cfg)
}

const (
	ssoAdminARN      = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef"
	ssoAdminStripped = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef"
	viewPolicy       = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
)

func eksAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msg) {
		t.Errorf("got %s: %s; want %s with %q", ae.ErrorCode(), ae.ErrorMessage(), code, msg)
	}
}

func TestEKSAccessEntryLifecycle(t *testing.T) {
	t.Parallel()
	s, c := startEKS(t, AuthModeAPIAndConfigMap)
	ctx := context.Background()

	dc, err := c.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(testCluster)})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Cluster.AccessConfig.AuthenticationMode != types.AuthenticationModeApiAndConfigMap {
		t.Errorf("mode %q", dc.Cluster.AccessConfig.AuthenticationMode)
	}

	before := time.Now()
	out, err := c.CreateAccessEntry(ctx, &eks.CreateAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN),
		Username: aws.String("admin:{{SessionName}}"), KubernetesGroups: []string{"platform"}, Tags: map[string]string{"owner": "me"}})
	if err != nil {
		t.Fatal(err)
	}
	e := out.AccessEntry
	if aws.ToString(e.Type) != "STANDARD" || aws.ToString(e.Username) != "admin:{{SessionName}}" || !slices.Equal(e.KubernetesGroups, []string{"platform"}) ||
		e.Tags["owner"] != "me" || e.CreatedAt.Before(before.Add(-time.Second)) ||
		!strings.HasPrefix(aws.ToString(e.AccessEntryArn), "arn:aws:eks:eu-west-1:111122223333:access-entry/demo/role/111122223333/AWSReservedSSO_Admin_0123456789abcdef/") {
		t.Errorf("created %+v", e)
	}

	if _, err := c.UpdateAccessEntry(ctx, &eks.UpdateAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN),
		KubernetesGroups: []string{"platform", "oncall"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssociateAccessPolicy(ctx, &eks.AssociateAccessPolicyInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN),
		PolicyArn: aws.String(viewPolicy), AccessScope: &types.AccessScope{Type: types.AccessScopeTypeNamespace, Namespaces: []string{"a", "b"}}}); err != nil {
		t.Fatal(err)
	}
	pol, err := c.ListAssociatedAccessPolicies(ctx, &eks.ListAssociatedAccessPoliciesInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.AssociatedAccessPolicies) != 1 || aws.ToString(pol.AssociatedAccessPolicies[0].PolicyArn) != viewPolicy ||
		!slices.Equal(pol.AssociatedAccessPolicies[0].AccessScope.Namespaces, []string{"a", "b"}) {
		t.Errorf("policies %+v", pol.AssociatedAccessPolicies)
	}
	d, err := c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.AccessEntry.KubernetesGroups, []string{"platform", "oncall"}) {
		t.Errorf("described %+v", d.AccessEntry)
	}
	if _, err := c.TagResource(ctx, &eks.TagResourceInput{ResourceArn: d.AccessEntry.AccessEntryArn, Tags: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &eks.ListTagsForResourceInput{ResourceArn: d.AccessEntry.AccessEntryArn})
	if err != nil || tags.Tags["k"] != "v" || tags.Tags["owner"] != "me" {
		t.Errorf("tags %v %v", tags, err)
	}
	if _, err := c.DisassociateAccessPolicy(ctx, &eks.DisassociateAccessPolicyInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN), PolicyArn: aws.String(viewPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(ssoAdminARN)})
	eksAPIError(t, err, "ResourceNotFoundException", "The specified principalArn could not be found.")
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("the SDK does not see a *types.ResourceNotFoundException: %T", err)
	}
	for _, op := range []string{"DescribeCluster", "CreateAccessEntry", "UpdateAccessEntry", "AssociateAccessPolicy", "ListAssociatedAccessPolicies",
		"DescribeAccessEntry", "TagResource", "ListTagsForResource", "DisassociateAccessPolicy", "DeleteAccessEntry"} {
		if s.Calls("eks:"+op) == 0 {
			t.Errorf("eks:%s was not counted: %v", op, s.AllCalls())
		}
	}
}

func TestEKSErrors(t *testing.T) {
	t.Parallel()
	_, c := startEKS(t, AuthModeAPI)
	ctx := context.Background()
	create := func(in eks.CreateAccessEntryInput) error {
		in.ClusterName = aws.String(testCluster)
		_, err := c.CreateAccessEntry(ctx, &in)
		return err
	}
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String(ssoAdminStripped)}), "InvalidParameterException", "The specified principalArn is invalid: invalid principal.")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:role/nobody")}), "InvalidParameterException", "invalid principal")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:user/alice")}), "InvalidParameterException", "invalid principal")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:sts::111122223333:assumed-role/x/y")}), "InvalidParameterException", "The principalArn parameter format is not valid")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String(ssoAdminARN), KubernetesGroups: []string{"system:masters"}}),
		"InvalidParameterException", "The kubernetes group name system:masters is invalid, it cannot start with system:")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String(ssoAdminARN), Username: aws.String("eks:admin")}),
		"InvalidParameterException", "The username must not begin with eks:")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String(ssoAdminARN), Username: aws.String("admin{{SessionName}}")}),
		"InvalidParameterException", "colon before {{SessionName}}")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:role/eks-node"), Type: aws.String("EC2_LINUX"), KubernetesGroups: []string{"nodes"}}),
		"InvalidParameterException", "Kubernetes groups cannot be specified for access entries of type EC2_LINUX")
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:user/people/alice"), Type: aws.String("EC2_LINUX")}),
		"InvalidParameterException", "require an IAM role")

	if err := create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:role/eks-node"), Type: aws.String("EC2_LINUX")}); err != nil {
		t.Fatal(err)
	}
	eksAPIError(t, create(eks.CreateAccessEntryInput{PrincipalArn: aws.String("arn:aws:iam::111122223333:role/eks-node"), Type: aws.String("EC2_LINUX")}),
		"ResourceInUseException", "The specified access entry resource is already in use on this cluster.")
	d, err := c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String("arn:aws:iam::111122223333:role/eks-node")})
	if err != nil || aws.ToString(d.AccessEntry.Username) != "system:node:{{EC2PrivateDNSName}}" || !slices.Equal(d.AccessEntry.KubernetesGroups, []string{"system:nodes"}) {
		t.Errorf("node entry %+v %v", d, err)
	}
	_, err = c.AssociateAccessPolicy(ctx, &eks.AssociateAccessPolicyInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String("arn:aws:iam::111122223333:role/eks-node"),
		PolicyArn: aws.String(viewPolicy), AccessScope: &types.AccessScope{Type: types.AccessScopeTypeCluster}})
	eksAPIError(t, err, "InvalidParameterException", `This operation can only be performed on Access Entries with a type of "STANDARD".`)

	_, err = c.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("other")})
	eksAPIError(t, err, "ResourceNotFoundException", "No cluster found for name: other.")
}

func TestEKSConfigMapModeRefusesAccessEntries(t *testing.T) {
	t.Parallel()
	s, c := startEKS(t, AuthModeConfigMap)
	_, err := c.ListAccessEntries(context.Background(), &eks.ListAccessEntriesInput{ClusterName: aws.String(testCluster)})
	eksAPIError(t, err, "InvalidRequestException", "authentication mode must be set to one of [API, API_AND_CONFIG_MAP]")
	// The admin API flips it.
	resp, err := http.Post(s.URL()+"/_emulator/eks/"+testCluster+"/authentication-mode?mode=API", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("flip: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if _, err := c.ListAccessEntries(context.Background(), &eks.ListAccessEntriesInput{ClusterName: aws.String(testCluster)}); err != nil {
		t.Fatal(err)
	}
}

func TestEKSListPagination(t *testing.T) {
	t.Parallel()
	roles := make([]Role, 250)
	for i := range roles {
		roles[i] = Role{Name: fmt.Sprintf("r%03d", i)}
	}
	s, cfg := startEmulator(t, Config{Roles: roles, EKSClusters: []EKSCluster{{Name: testCluster}}})
	c := eks.NewFromConfig(cfg)
	ctx := context.Background()
	for _, r := range roles {
		if _, err := c.CreateAccessEntry(ctx, &eks.CreateAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(s.roleARN(normalizeRole(r)))}); err != nil {
			t.Fatal(err)
		}
	}
	s.ResetCalls()
	var all []string
	p := eks.NewListAccessEntriesPaginator(c, &eks.ListAccessEntriesInput{ClusterName: aws.String(testCluster)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out.AccessEntries...)
	}
	if len(all) != 250 || !slices.IsSorted(all) || s.Calls("eks:ListAccessEntries") != 3 {
		t.Errorf("%d entries, sorted %v, %d calls", len(all), slices.IsSorted(all), s.Calls("eks:ListAccessEntries"))
	}
	_, err := c.ListAccessEntries(ctx, &eks.ListAccessEntriesInput{ClusterName: aws.String(testCluster), MaxResults: aws.Int32(101)})
	eksAPIError(t, err, "InvalidParameterException", "maxResults")
}

// An entry made for a role that was deleted and created again since still
// lists and describes normally, but no longer lets the role in.
func TestEKSStaleBindingAfterRoleRecreated(t *testing.T) {
	t.Parallel()
	s, c := startEKS(t, AuthModeAPI)
	ctx := context.Background()
	const deployer = "arn:aws:iam::111122223333:role/ci/deployer"
	if _, err := c.CreateAccessEntry(ctx, &eks.CreateAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(deployer)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(testCluster, deployer); err != nil {
		t.Fatalf("before: %v", err)
	}
	resp, err := http.Post(s.URL()+"/_emulator/roles/recreate?name=deployer", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("recreate: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if _, err := c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(deployer)}); err != nil {
		t.Fatalf("the entry still describes normally: %v", err)
	}
	resp, err = http.Get(s.URL() + "/_emulator/eks/" + testCluster + "/authenticate?principalArn=" + url.QueryEscape(deployer))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "grants nothing") {
		t.Errorf("authenticate after recreate: %d %s", resp.StatusCode, body)
	}
	entries, _ := s.AccessEntries(testCluster)
	if len(entries) != 1 || !entries[0].Stale {
		t.Errorf("admin view %+v", entries)
	}
	// Created again: it works.
	if _, err := c.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(deployer)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccessEntry(ctx, &eks.CreateAccessEntryInput{ClusterName: aws.String(testCluster), PrincipalArn: aws.String(deployer)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(testCluster, deployer); err != nil {
		t.Errorf("after: %v", err)
	}
}
