//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// Access entries end to end: the real binary behind a real apiserver,
// kubectl edit of aws-auth, and the EKS access-entry API of the emulator
// through the real SDK.

const (
	aeCluster  = "e2e"
	aeRegion   = "eu-west-1"
	aeSSOPath  = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
	aeNodeRole = "arn:aws:iam::111122223333:role/eks-node-group-1"
	// An entry somebody made by hand, which aws-auth does not mention.
	aeTheirs = "arn:aws:iam::111122223333:role/break-glass"
)

const aeInitialRoles = `# Platform admins, through IAM Identity Center.
- permissionset: Admin
  username: "admin:{{SessionName}}"
  groups:
    - system:masters
- permissionset: ReadOnly
  username: "readonly:{{SessionName}}"
  groups: [viewers]
  accessPolicies:
    - policy: AmazonEKSViewPolicy
      namespaces: [team-a]
`

type aeSuite struct {
	cp  *framework.ControlPlane
	emu *awsemu.Server
	api *eks.Client
}

func TestAccessEntries(t *testing.T) {
	mutating, validating := framework.WebhookConfigurations(framework.WebhookScope{})
	cp := framework.StartControlPlaneWith(t, framework.Options{Webhooks: envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
	}})
	emu := framework.StartEmulator(t, awsemu.Config{
		AccountID: "111122223333", Region: aeRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Admin", "0123456789abcdef", aeRegion),
			awsemu.SSORole("ReadOnly", "fedcba9876543210", aeRegion),
			awsemu.SSORole("Dev", "1111111111111111", aeRegion),
			{Name: "eks-node-group-1"}, {Name: "break-glass"},
		},
		EKSClusters: []awsemu.EKSCluster{{Name: aeCluster, AuthenticationMode: awsemu.AuthModeConfigMap}},
	})
	cfg, err := emu.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := &aeSuite{cp: cp, emu: emu, api: eks.NewFromConfig(cfg)}

	t.Run("PlanModeReportsAndWritesNothing", s.testPlanMode)
	t.Run("SyncFollowsKubectlEditRotationAndRecreation", s.testSync)
}

func (s *aeSuite) writes() int {
	n := 0
	for k, v := range s.emu.AllCalls() {
		if strings.HasPrefix(k, "eks:") && !strings.HasPrefix(k, "eks:List") && !strings.HasPrefix(k, "eks:Describe") {
			n += v
		}
	}
	return n
}

func (s *aeSuite) entries(t *testing.T) map[string]awsemu.AccessEntry {
	t.Helper()
	all, err := s.emu.AccessEntries(aeCluster)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]awsemu.AccessEntry{}
	for _, e := range all {
		out[e.PrincipalARN] = e
	}
	return out
}

func (s *aeSuite) waitEvent(t *testing.T, timeout time.Duration, reason string, noteHas ...string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	framework.WaitFor(t, timeout, func() (bool, error) {
		for _, e := range s.cp.Events(t, "kube-system", "aws-auth") {
			if e.Reason != reason {
				continue
			}
			ok := true
			for _, n := range noteHas {
				ok = ok && strings.Contains(e.Note, n)
			}
			if ok {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

func (s *aeSuite) countEvents(t *testing.T, reason string) int {
	n := 0
	for _, e := range s.cp.Events(t, "kube-system", "aws-auth") {
		if e.Reason == reason {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

func (s *aeSuite) start(t *testing.T, mode string) *framework.WebhookProcess {
	return s.cp.StartWebhook(t, framework.WebhookOptions{Emulator: s.emu, Args: []string{
		"--resync-interval=1s", "--access-entries=" + mode, "--eks-cluster-name=" + aeCluster, "--log-level=debug",
	}})
}

// testPlanMode: the cluster starts in CONFIG_MAP mode, which is said once;
// flipped to API_AND_CONFIG_MAP, the drift is an Event and a metric, and
// nothing is written.
func (s *aeSuite) testPlanMode(t *testing.T) {
	wh := s.start(t, "plan")
	res := s.cp.KubectlWith(t, framework.KubectlOptions{Stdin: whManifest("kube-system", "aws-auth", aeInitialRoles, "")}, "apply", "-f", "-")
	if res.ExitCode != 0 {
		t.Fatalf("apply:\n%s", res)
	}
	s.waitEvent(t, 15*time.Second, "AccessEntriesOff", "authentication mode CONFIG_MAP", "access entries are off")
	time.Sleep(3 * time.Second) // several passes
	if n := s.countEvents(t, "AccessEntriesOff"); n != 1 {
		t.Errorf("CONFIG_MAP was said %d times, want once", n)
	}
	if err := s.emu.SetAuthenticationMode(aeCluster, awsemu.AuthModeAPIAndConfigMap); err != nil {
		t.Fatal(err)
	}
	// An entry made by hand, which aws-auth does not mention.
	if _, err := s.api.CreateAccessEntry(context.Background(), &eks.CreateAccessEntryInput{ClusterName: aws.String(aeCluster),
		PrincipalArn: aws.String(aeTheirs), KubernetesGroups: []string{"emergency"}}); err != nil {
		t.Fatal(err)
	}
	s.emu.ResetCalls()
	e := s.waitEvent(t, 15*time.Second, "AccessEntriesDrift", "differ from aws-auth", "operation(s) pending",
		"create       "+aeSSOPath+"AWSReservedSSO_Admin_0123456789abcdef")
	if e.Type != "Warning" {
		t.Errorf("drift Event type %s", e.Type)
	}
	framework.WaitFor(t, 10*time.Second, func() (bool, error) {
		return wh.Metrics(t).Sum("aws_auth_webhook_access_entries_pending_operations", map[string]string{"action": "create"}) == 3, nil
	})
	if n := s.writes(); n != 0 {
		t.Errorf("plan mode wrote %d times: %v", n, s.emu.AllCalls())
	}
	if got := s.entries(t); len(got) != 1 {
		t.Errorf("entries %+v", got)
	}
	wh.Stop(t)
}

// testSync: kubectl edit adds a permission set and its entry appears (SSO
// path in the ARN); the permission set is re-provisioned and its entry
// moves with no moment without one; a role is recreated and its entry is
// repaired; system:masters is the cluster-admin policy; the entry made by
// hand is never touched.
func (s *aeSuite) testSync(t *testing.T) {
	wh := s.start(t, "sync")
	adminARN := aeSSOPath + "AWSReservedSSO_Admin_0123456789abcdef"
	readOnlyARN := aeSSOPath + "AWSReservedSSO_ReadOnly_fedcba9876543210"
	framework.WaitFor(t, 20*time.Second, func() (bool, error) { return len(s.entries(t)) == 4, nil })
	got := s.entries(t)
	admin := got[adminARN]
	if admin.Type != "STANDARD" || admin.Username != "admin:{{SessionName}}" || len(admin.KubernetesGroups) != 0 || len(admin.Policies) != 1 ||
		admin.Policies[0].PolicyARN != "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" || admin.Policies[0].ScopeType != "cluster" ||
		admin.Tags[accessentries.ManagedTag] != accessentries.ManagedTagValue {
		t.Errorf("system:masters entry %+v", admin)
	}
	if ro := got[readOnlyARN]; len(ro.Policies) != 1 || ro.Policies[0].ScopeType != "namespace" || strings.Join(ro.KubernetesGroups, ",") != "viewers" {
		t.Errorf("ReadOnly entry %+v", ro)
	}
	if node := got[aeNodeRole]; node.Type != "EC2_LINUX" {
		t.Errorf("node entry %+v", node)
	}

	// kubectl edit adds a permission set.
	dir := t.TempDir()
	script := filepath.Join(dir, "editor.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsed -i '/^    - rolearn: .*AWSReservedSSO_ReadOnly_/i\\\n    - permissionset: Dev\\\n      username: \"dev:{{SessionName}}\"\\\n      groups: [developers]' \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBE_EDITOR", script)
	t.Setenv("TMPDIR", dir)
	if res := s.cp.Kubectl(t, "edit", "configmap", "aws-auth", "-n", "kube-system"); res.ExitCode != 0 {
		t.Fatalf("kubectl edit:\n%s", res)
	}
	devARN := aeSSOPath + "AWSReservedSSO_Dev_1111111111111111"
	start := time.Now()
	framework.WaitFor(t, 15*time.Second, func() (bool, error) { _, ok := s.entries(t)[devARN]; return ok, nil })
	t.Logf("access entry for the edited-in permission set appeared %v after kubectl edit", time.Since(start).Round(time.Millisecond))
	if dev := s.entries(t)[devARN]; dev.Username != "dev:{{SessionName}}" || strings.Join(dev.KubernetesGroups, ",") != "developers" {
		t.Errorf("Dev entry %+v", dev)
	}

	// Re-provisioned: a new suffix. IAM deletes the old role at once, so the
	// old entry grants nothing from then on; watch that Dev always has an
	// entry, i.e. that the old one is deleted only once the new one exists.
	var gaps atomic.Int32
	var observations atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			all, _ := s.emu.AccessEntries(aeCluster)
			ok := false
			for _, e := range all {
				ok = ok || strings.Contains(e.PrincipalARN, "AWSReservedSSO_Dev_")
			}
			observations.Add(1)
			if !ok {
				gaps.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	newRole, err := s.emu.RotatePermissionSet("Dev")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 20*time.Second, func() (bool, error) {
		all := s.entries(t)
		_, hasNew := all[aeSSOPath+newRole]
		_, hasOld := all[devARN]
		return hasNew && !hasOld, nil
	})
	close(stop)
	wg.Wait()
	if gaps.Load() != 0 {
		t.Errorf("Dev had no entry in %d of %d observations during the move", gaps.Load(), observations.Load())
	}
	t.Logf("permission set moved to %s; %d observations, none without an entry", newRole, observations.Load())
	if _, err := s.emu.Authenticate(aeCluster, aeSSOPath+newRole); err != nil {
		t.Errorf("the new role cannot get in: %v", err)
	}
	s.waitEvent(t, 10*time.Second, "AccessEntriesMoved", "moved 1 entry to a permission set's new role", "Dev")

	// The ReadOnly role is deleted and created again: its entry is stale,
	// and is repaired.
	if _, err := s.emu.RecreateRole("AWSReservedSSO_ReadOnly_fedcba9876543210"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.emu.Authenticate(aeCluster, readOnlyARN); err == nil {
		t.Fatal("the entry should be stale right after the role was recreated")
	}
	framework.WaitFor(t, 20*time.Second, func() (bool, error) {
		_, err := s.emu.Authenticate(aeCluster, readOnlyARN)
		return err == nil, nil
	})
	if ro := s.entries(t)[readOnlyARN]; len(ro.Policies) != 1 || strings.Join(ro.KubernetesGroups, ",") != "viewers" {
		t.Errorf("repaired ReadOnly entry %+v", ro)
	}
	s.waitEvent(t, 10*time.Second, "AccessEntriesRoleRecreated", "recreated 1 entry whose role was deleted and created again")

	// The hand-made entry is untouched, and a settled pass writes nothing.
	if theirs := s.entries(t)[aeTheirs]; theirs.Tags[accessentries.ManagedTag] != "" || strings.Join(theirs.KubernetesGroups, ",") != "emergency" {
		t.Errorf("the unmanaged entry was touched: %+v", theirs)
	}
	s.emu.ResetCalls()
	time.Sleep(3 * time.Second) // at least two passes
	if n := s.writes(); n != 0 {
		t.Errorf("settled passes wrote %d times: %v", n, s.emu.AllCalls())
	}
	m := wh.Metrics(t)
	if m.Sum("aws_auth_webhook_access_entries_operations_total", map[string]string{"repair": "moved"}) != 2 ||
		m.Sum("aws_auth_webhook_access_entries_operations_total", map[string]string{"repair": "role-recreated"}) != 1 {
		t.Errorf("operations metric:\n%s", m)
	}
}
