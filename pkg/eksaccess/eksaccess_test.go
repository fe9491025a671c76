package eksaccess

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

const (
	cluster = "prod"
	acct    = "111122223333"
	ssoPath = "arn:aws:iam::" + acct + ":role/aws-reserved/sso.amazonaws.com/eu-west-1/"
)

var writes = []string{"eks:CreateAccessEntry", "eks:UpdateAccessEntry", "eks:DeleteAccessEntry",
	"eks:AssociateAccessPolicy", "eks:DisassociateAccessPolicy", "eks:TagResource"}

func writeCalls(emu *awsemu.Server) int {
	n := 0
	for _, w := range writes {
		n += emu.Calls(w)
	}
	return n
}

type env struct {
	emu *awsemu.Server
	res *awsidentity.Resolver
	api *eks.Client
	c   *Client
}

func setup(t *testing.T, mode string, maxAge time.Duration) *env {
	t.Helper()
	emu := awsemu.New(awsemu.Config{AccountID: acct, Region: "eu-west-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", "eu-west-1"),
			awsemu.SSORole("Dev", "1111111111111111", "eu-west-1"),
			{Name: "eks-node"}, {Name: "deployer", Path: "/ci/"}, {Name: "legacy"},
		},
		Users:       []awsemu.User{{Name: "alice"}},
		EKSClusters: []awsemu.EKSCluster{{Name: cluster, AuthenticationMode: mode}},
	})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	cfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A TTL of a millisecond: every pass sees IAM as it is now.
	res := awsidentity.New(cfg, awsidentity.Options{TTL: time.Millisecond, NegativeTTL: time.Millisecond, RetryMaxBackoff: time.Millisecond,
		IAMRequestsPerSecond: 1000, IAMBurst: 1000})
	api := eks.NewFromConfig(cfg)
	return &env{emu: emu, res: res, api: api, c: New(api, cluster, Options{MaxAge: maxAge})}
}

const awsAuth = `- permissionset: Admin
  username: admin:{{SessionName}}
  groups: [system:masters]
- permissionset: Dev
  username: dev:{{SessionName}}
  groups: [developers]
  accessPolicies:
    - policy: AmazonEKSEditPolicy
      namespaces: [team-a]
- rolearn: arn:aws:iam::111122223333:role/deployer
  username: deployer
  groups: [deployers]
- rolearn: arn:aws:iam::111122223333:role/eks-node
  username: system:node:{{EC2PrivateDNSName}}
  groups: [system:bootstrappers, system:nodes]
`

func (e *env) render(t *testing.T, mapRoles string) *awsauth.Result {
	t.Helper()
	res, err := awsauth.Render(context.Background(), map[string]string{awsauth.KeyMapRoles: mapRoles}, e.res, awsauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Findings.HasErrors() {
		t.Fatal(res.Findings.Errors().Strings())
	}
	return res
}

func (e *env) sync(t *testing.T, mapRoles string, opts accessentries.Options) *Pass {
	t.Helper()
	pass, err := e.c.Sync(context.Background(), e.render(t, mapRoles), e.res, opts)
	if err != nil {
		t.Fatalf("sync: %v (done: %v)", err, pass)
	}
	return pass
}

func (e *env) entry(t *testing.T, principal string) awsemu.AccessEntry {
	t.Helper()
	all, err := e.emu.AccessEntries(cluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.PrincipalARN == principal {
			return a
		}
	}
	t.Fatalf("no entry for %s in %+v", principal, all)
	return awsemu.AccessEntry{}
}

func TestSyncCreatesIsIdempotentAndLeavesUnmanagedAlone(t *testing.T) {
	e := setup(t, awsemu.AuthModeAPIAndConfigMap, 0)
	ctx := context.Background()
	// Someone else's entry, not in aws-auth, and one for a principal that
	// aws-auth maps: neither is touched.
	for _, p := range []string{"arn:aws:iam::" + acct + ":role/legacy", "arn:aws:iam::" + acct + ":role/ci/deployer"} {
		if _, err := e.api.CreateAccessEntry(ctx, &eks.CreateAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(p),
			KubernetesGroups: []string{"theirs"}}); err != nil {
			t.Fatal(err)
		}
	}
	e.emu.ResetCalls()
	pass := e.sync(t, awsAuth, accessentries.Options{})
	if pass.Mode != "API_AND_CONFIG_MAP" || len(pass.Done) != len(pass.Plan.Ops) {
		t.Fatalf("pass %+v", pass)
	}
	admin := e.entry(t, ssoPath+"AWSReservedSSO_Admin_0123456789abcdef")
	if admin.Type != "STANDARD" || admin.Username != "admin:{{SessionName}}" || len(admin.KubernetesGroups) != 0 ||
		len(admin.Policies) != 1 || admin.Policies[0].PolicyARN != "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" || admin.Policies[0].ScopeType != "cluster" ||
		admin.Tags[accessentries.ManagedTag] != accessentries.ManagedTagValue || admin.Tags[accessentries.PermissionSetTag] != "Admin" {
		t.Errorf("admin entry %+v", admin)
	}
	dev := e.entry(t, ssoPath+"AWSReservedSSO_Dev_1111111111111111")
	if len(dev.Policies) != 1 || dev.Policies[0].ScopeType != "namespace" || strings.Join(dev.Policies[0].Namespaces, ",") != "team-a" {
		t.Errorf("dev entry %+v", dev)
	}
	if node := e.entry(t, "arn:aws:iam::"+acct+":role/eks-node"); node.Type != "EC2_LINUX" {
		t.Errorf("node entry %+v", node)
	}
	for _, p := range []string{"arn:aws:iam::" + acct + ":role/legacy", "arn:aws:iam::" + acct + ":role/ci/deployer"} {
		if got := e.entry(t, p); got.Tags[accessentries.ManagedTag] != "" || strings.Join(got.KubernetesGroups, ",") != "theirs" {
			t.Errorf("unmanaged entry touched: %+v", got)
		}
	}
	if len(pass.Plan.Conflicts) != 1 || len(pass.Plan.Unmanaged) != 1 {
		t.Errorf("conflicts %+v unmanaged %+v", pass.Plan.Conflicts, pass.Plan.Unmanaged)
	}

	// A second pass makes no write call.
	e.emu.ResetCalls()
	pass = e.sync(t, awsAuth, accessentries.Options{})
	if len(pass.Plan.Ops) != 0 || writeCalls(e.emu) != 0 {
		t.Errorf("second sync: ops %v, calls %v", pass.Plan.Ops, e.emu.AllCalls())
	}

	// --adopt takes the conflicting entry over, then leaves it alone too.
	pass = e.sync(t, awsAuth, accessentries.Options{Adopt: true})
	dep := e.entry(t, "arn:aws:iam::"+acct+":role/ci/deployer")
	if dep.Tags[accessentries.ManagedTag] != accessentries.ManagedTagValue || strings.Join(dep.KubernetesGroups, ",") != "deployers" || dep.Username != "deployer" {
		t.Errorf("adopted entry %+v (ops %v)", dep, pass.Done)
	}
	e.emu.ResetCalls()
	if pass = e.sync(t, awsAuth, accessentries.Options{}); len(pass.Plan.Ops) != 0 || writeCalls(e.emu) != 0 {
		t.Errorf("after adopting: %v", pass.Plan.Ops)
	}
}

// watchingAPI is the real client, with a check after every write: the
// permission set Dev must always have a working entry.
type watchingAPI struct {
	API
	t    *testing.T
	emu  *awsemu.Server
	seen int
}

func (w *watchingAPI) check(op string) {
	w.seen++
	entries, _ := w.emu.AccessEntries(cluster)
	for _, e := range entries {
		if strings.Contains(e.PrincipalARN, "AWSReservedSSO_Dev_") && !e.Stale && len(e.Policies) > 0 {
			return
		}
	}
	w.t.Errorf("after %s, permission set Dev has no working entry with its policy: %+v", op, entries)
}

func (w *watchingAPI) CreateAccessEntry(ctx context.Context, in *eks.CreateAccessEntryInput, o ...func(*eks.Options)) (*eks.CreateAccessEntryOutput, error) {
	out, err := w.API.CreateAccessEntry(ctx, in, o...)
	if !strings.Contains(aws.ToString(in.PrincipalArn), "Dev") {
		w.check("CreateAccessEntry")
	}
	return out, err
}

func (w *watchingAPI) DeleteAccessEntry(ctx context.Context, in *eks.DeleteAccessEntryInput, o ...func(*eks.Options)) (*eks.DeleteAccessEntryOutput, error) {
	out, err := w.API.DeleteAccessEntry(ctx, in, o...)
	w.check("DeleteAccessEntry " + aws.ToString(in.PrincipalArn))
	return out, err
}

func (w *watchingAPI) AssociateAccessPolicy(ctx context.Context, in *eks.AssociateAccessPolicyInput, o ...func(*eks.Options)) (*eks.AssociateAccessPolicyOutput, error) {
	out, err := w.API.AssociateAccessPolicy(ctx, in, o...)
	w.check("AssociateAccessPolicy")
	return out, err
}

func TestSyncMovesARotatedPermissionSetWithoutAGap(t *testing.T) {
	e := setup(t, awsemu.AuthModeAPI, time.Hour)
	e.sync(t, awsAuth, accessentries.Options{})
	oldARN := ssoPath + "AWSReservedSSO_Dev_1111111111111111"
	newName, err := e.emu.RotatePermissionSet("Dev")
	if err != nil {
		t.Fatal(err)
	}
	w := &watchingAPI{API: e.api, t: t, emu: e.emu}
	e.c.api = w
	pass := e.sync(t, awsAuth, accessentries.Options{})
	var got []string
	for _, op := range pass.Done {
		got = append(got, fmt.Sprintf("%s %s %s", op.Action, roleNameOf(op.PrincipalARN), op.Repair))
	}
	want := []string{"create " + newName + " moved", "associate " + newName + " ", "delete AWSReservedSSO_Dev_1111111111111111 moved"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("done %q, want %q", got, want)
	}
	if w.seen == 0 {
		t.Error("no write was watched")
	}
	all, _ := e.emu.AccessEntries(cluster)
	for _, a := range all {
		if a.PrincipalARN == oldARN {
			t.Errorf("the old entry is still there")
		}
	}
	if n := e.entry(t, ssoPath+newName); n.Tags[accessentries.PermissionSetTag] != "Dev" || len(n.Policies) != 1 {
		t.Errorf("new entry %+v", n)
	}
}

func roleNameOf(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

func TestSyncRepairsARecreatedRole(t *testing.T) {
	e := setup(t, awsemu.AuthModeAPI, time.Hour)
	e.sync(t, awsAuth, accessentries.Options{})
	const deployer = "arn:aws:iam::" + acct + ":role/ci/deployer"
	if _, err := e.emu.RecreateRole("deployer"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.Authenticate(cluster, deployer); err == nil {
		t.Fatal("the emulator should see the stale binding")
	}
	time.Sleep(2 * time.Millisecond) // past the IAM cache TTL
	pass := e.sync(t, awsAuth, accessentries.Options{})
	if len(pass.Done) != 1 || pass.Done[0].Action != accessentries.ActionRecreate || pass.Done[0].Repair != accessentries.RepairRoleRecreated ||
		!strings.Contains(pass.Done[0].Reason, "bound to the deleted role") {
		t.Fatalf("done %+v", pass.Done)
	}
	if _, err := e.emu.Authenticate(cluster, deployer); err != nil {
		t.Errorf("after the repair: %v", err)
	}
	if got := e.entry(t, deployer); got.Username != "deployer" || strings.Join(got.KubernetesGroups, ",") != "deployers" {
		t.Errorf("recreated entry %+v", got)
	}
}

// With a warm cache, a pass with nothing to do lists and describes
// nothing else; after one edit it writes once and describes only the
// entry it writes to.
func TestWarmPassReadsOnlyTheListing(t *testing.T) {
	e := setup(t, awsemu.AuthModeAPI, time.Hour)
	e.sync(t, awsAuth, accessentries.Options{})
	e.sync(t, awsAuth, accessentries.Options{}) // describes what the first pass wrote
	e.emu.ResetCalls()
	e.sync(t, awsAuth, accessentries.Options{})
	calls := e.emu.AllCalls()
	if calls["eks:ListAccessEntries"] != 1 || calls["eks:DescribeCluster"] != 1 || calls["eks:DescribeAccessEntry"] != 0 ||
		calls["eks:ListAssociatedAccessPolicies"] != 0 || writeCalls(e.emu) != 0 {
		t.Errorf("warm pass calls %v", calls)
	}
	e.emu.ResetCalls()
	edited := strings.Replace(awsAuth, "groups: [deployers]", "groups: [deployers, releasers]", 1)
	pass := e.sync(t, edited, accessentries.Options{})
	calls = e.emu.AllCalls()
	if len(pass.Done) != 1 || calls["eks:UpdateAccessEntry"] != 1 || writeCalls(e.emu) != 1 || calls["eks:DescribeAccessEntry"] != 1 {
		t.Errorf("after one edit: done %v, calls %v", pass.Done, calls)
	}
}

func TestConfigMapModeMakesNoAccessEntryCall(t *testing.T) {
	e := setup(t, awsemu.AuthModeConfigMap, 0)
	e.emu.ResetCalls()
	pass := e.sync(t, awsAuth, accessentries.Options{})
	if pass.Mode != "CONFIG_MAP" || pass.Plan != nil {
		t.Errorf("pass %+v", pass)
	}
	eksCalls := 0
	for k, v := range e.emu.AllCalls() {
		if strings.HasPrefix(k, "eks:") {
			eksCalls += v
		}
	}
	if calls := e.emu.AllCalls(); calls["eks:DescribeCluster"] != 1 || eksCalls != 1 {
		t.Errorf("calls %v", calls)
	}
}
