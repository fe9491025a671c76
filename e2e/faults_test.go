//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-webhook/aws-auth-webhook/e2e/framework"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// TestFaults runs the real binary behind a real kube-apiserver (the webhook
// configurations the chart ships, failurePolicy Fail, timeout 5s) while
// things break: IAM throttles, fails, hangs or breaks off a listing half
// way; IMDS and STS are unreachable at start; several writers edit aws-auth
// at once; the leader replica is SIGKILLed; the serving certificate is
// replaced under load. Each subtest starts its own emulator and webhook
// process(es) on the one control plane and prints its figures in lines that
// start with "reliability:" (README.md, "Reliability", quotes them).
func TestFaults(t *testing.T) {
	mutating, validating := framework.WebhookConfigurations(framework.WebhookScope{})
	cp := framework.StartControlPlaneWith(t, framework.Options{Webhooks: envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
	}})
	t.Run("IAMOutageDuringAdmissionAndResync", func(t *testing.T) { testIAMOutage(t, cp) })
	t.Run("StartsWithoutIMDSAndSTS", func(t *testing.T) { testStartWithoutIMDSAndSTS(t, cp) })
	t.Run("ConcurrentWritersLoseNoUpdate", func(t *testing.T) { testConcurrentWriters(t, cp) })
	t.Run("LeaderKilledOtherReplicaTakesOver", func(t *testing.T) { testLeaderKilled(t, cp) })
	t.Run("CertificateReplacedUnderLoad", func(t *testing.T) { testCertificateRenewalUnderLoad(t, cp) })
}

// --- IAM outage --------------------------------------------------------------

// fOutageRoles is the mapRoles of the outage subtest: two permission sets
// (Ops is rotated during the outage) and the Admin entry's username, which
// the known-name writes change.
func fOutageRoles(adminUser string) string {
	return `# Identity Center permission sets; the webhook resolves them.
- permissionset: Admin
  username: ` + adminUser + `
  groups: [system:masters]
- permissionset: Ops   # rotated during the outage
  username: "ops:{{SessionName}}"
  groups: [ops]
`
}

// fNewTeamEntry is a permission set the webhook has never seen.
const fNewTeamEntry = `- permissionset: NewTeam
  username: newteam
  groups: [newteam]
`

// storedARNs maps each permission set of the stored mapRoles to its rolearn.
func storedARNs(cm *corev1.ConfigMap) map[string]string {
	out := map[string]string{}
	for _, m := range awsauth.Lint(cm.Data).Roles {
		if m.PermissionSet != "" {
			out[m.PermissionSet] = m.ARN
		}
	}
	return out
}

// testIAMOutage: one long IAM outage that changes kind on the way —
// throttling, 503, 500, a hang past every deadline, and listings that break
// off after their first page — with no good answer in between. Throughout,
// writes that name known permission sets are admitted with the cached ARNs;
// once the last good listing is older than the negative-cache window, a
// write naming a permission set the webhook has never seen is refused with
// a message that IAM is unavailable (not that the name is wrong), and
// nothing of that write is stored. The resync loop fails every pass and
// writes nothing, although a permission set was re-provisioned meanwhile;
// when IAM is back, its next pass writes the new ARN.
func testIAMOutage(t *testing.T, cp *framework.ControlPlane) {
	ctx := context.Background()
	roles := []awsemu.Role{
		awsemu.SSORole("Admin", "0123456789abcdef", whRegion),
		awsemu.SSORole("Ops", "2222222222222222", whRegion),
		{Name: "eks-node-group-1"},
	}
	for i := 1; i <= 4; i++ {
		roles = append(roles, awsemu.SSORole(fmt.Sprintf("Team%d", i), awsemu.RandomSuffix(), whRegion))
	}
	// Three roles a page: every listing is two pages, Admin and Ops on the
	// first, so a listing broken off after page 1 has both.
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion,
		NodeRoleName: "eks-node-group-1", MaxPageSize: 3, Roles: roles})
	iam := framework.StartIAMFaults(t, emu)
	const resyncInterval = 2 * time.Second
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, Env: iam.Env(), Args: []string{
		"--resync-interval=" + resyncInterval.String(), "--break-glass-group=" + whBreakGlass}})
	s := &webhookSuite{cp: cp, emu: emu, wh: wh}

	created := s.resetAWSAuth(t, fOutageRoles("admin-0"), "")
	stored := s.get(t)
	adminARN, opsARN := whARN(roles[0].Name), whARN(roles[1].Name)
	if got := storedARNs(stored); got["Admin"] != adminARN || got["Ops"] != opsARN {
		t.Fatalf("before the outage: stored ARNs %v", got)
	}

	metric := func(name string, labels map[string]string) float64 { return wh.Metrics(t).Sum(name, labels) }
	failedRuns := func() float64 {
		return metric("aws_auth_webhook_resync_runs_total", map[string]string{"result": "failed"})
	}

	// The outage begins; Ops is re-provisioned once no listing can succeed.
	outageStart := time.Now()
	iam.Set(awsemu.Fault{Code: "Throttling", Message: "Rate exceeded"})
	framework.WaitFor(t, 30*time.Second, func() (bool, error) { return iam.Injected.Load() > 0, nil })
	lastGood := time.Unix(int64(metric("aws_auth_webhook_last_sso_role_listing_timestamp_seconds", nil)), 0)
	newOps, err := emu.RotatePermissionSet("Ops")
	if err != nil {
		t.Fatal(err)
	}
	newOpsARN := whARN(newOps)

	writes, round := 0, 0
	rv := stored.ResourceVersion
	// knownWrite changes the Admin entry's username: admitted, resolved
	// from the cache, Ops still at its last known ARN (not dropped, not
	// half-resolved); nobody else wrote in between.
	knownWrite := func(phase string) {
		t.Helper()
		round++
		user := fmt.Sprintf("admin-%d", round)
		cm := s.get(t)
		if cm.ResourceVersion != rv {
			t.Fatalf("%s: aws-auth was written by someone else during the outage (resourceVersion %s -> %s):\n%s",
				phase, rv, cm.ResourceVersion, cm.Data["mapRoles"])
		}
		cm.Data["mapRoles"] = strings.Replace(cm.Data["mapRoles"], fmt.Sprintf("username: admin-%d\n", round-1), "username: "+user+"\n", 1)
		if err := cp.Client.Update(ctx, cm); err != nil {
			t.Fatalf("%s: a write naming only known permission sets was refused: %v", phase, err)
		}
		writes++
		rv = cm.ResourceVersion
		if got := storedARNs(s.get(t)); got["Admin"] != adminARN || got["Ops"] != opsARN {
			t.Fatalf("%s: stored ARNs %v, want Admin %s and Ops still %s", phase, got, adminARN, opsARN)
		}
	}
	// unknownWrite changes the Admin username and adds NewTeam: refused as
	// a whole, saying IAM is unavailable.
	unknownWrite := func(phase string) string {
		t.Helper()
		cm := s.get(t)
		cm.Data["mapRoles"] = strings.Replace(cm.Data["mapRoles"], fmt.Sprintf("username: admin-%d\n", round), "username: half-written\n", 1) + fNewTeamEntry
		err := cp.Client.Update(ctx, cm)
		if err == nil {
			t.Fatalf("%s: a permission set nobody could look up was admitted", phase)
		}
		msg := err.Error()
		if !apierrors.IsForbidden(err) {
			t.Fatalf("%s: the write failed, but was not denied by the webhook: %v", phase, err)
		}
		assertContains(t, phase+": the refusal", msg, "NewTeam", "iam:ListRoles is unavailable", "they may well exist, try again later")
		if strings.Contains(msg, "has no role in this account") {
			t.Errorf("%s: the refusal says the name is wrong: %s", phase, msg)
		}
		if after := s.get(t); after.ResourceVersion != rv || strings.Contains(after.Data["mapRoles"], "half-written") {
			t.Fatalf("%s: part of a refused write was stored (resourceVersion %s -> %s)", phase, rv, after.ResourceVersion)
		}
		return msg
	}

	// Phase 1, throttling: known names are admitted while the negative
	// cache ages; then a name never seen is asked of IAM, which throttles.
	for time.Since(lastGood) <= awsidentity.DefaultNegativeTTL+time.Second {
		knownWrite("throttling")
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the last good listing is %v old; the negative cache (%v) no longer answers", time.Since(lastGood).Round(time.Second), awsidentity.DefaultNegativeTTL)

	phases := []struct {
		name string
		set  func()
	}{
		{"throttling", func() {}},
		{"503 ServiceUnavailable", func() { iam.Set(awsemu.Fault{Code: "ServiceUnavailable"}) }},
		{"500 InternalFailure", func() { iam.Set(awsemu.Fault{Code: "InternalFailure", HTTPStatus: 500}) }},
		// Longer than the SDK call timeout and the admission deadline.
		{"no answer (timeout)", func() { iam.Set(awsemu.Fault{Delay: 2 * time.Minute}) }},
		{"listing broken off after page 1", func() { iam.SetLaterPages(awsemu.Fault{Code: "ServiceUnavailable"}) }},
	}
	var figures []string
	for _, ph := range phases {
		ph.set()
		phaseStart, injected, failed0, writes0 := time.Now(), iam.Injected.Load(), failedRuns(), writes
		// Two more resync passes fail, so at least one began and failed in
		// this kind of outage; none wrote (knownWrite checks nobody wrote).
		for failedRuns() < failed0+2 || iam.Injected.Load() == injected {
			knownWrite(ph.name)
			if time.Since(phaseStart) > 90*time.Second {
				t.Fatalf("%s: no failed resync pass within 90s", ph.name)
			}
			time.Sleep(300 * time.Millisecond)
		}
		knownWrite(ph.name)
		msg := unknownWrite(ph.name)
		t.Logf("%s: refused with: %s", ph.name, msg)
		figures = append(figures, fmt.Sprintf("%s: %d known-name writes admitted, unknown name refused as IAM unavailable, %v failed resync passes, 0 writes",
			ph.name, writes-writes0, failedRuns()-failed0))
	}
	if got := storedARNs(s.get(t)); got["Ops"] != opsARN {
		t.Fatalf("after the outage: Ops %s, want its last known ARN %s", got["Ops"], opsARN)
	}
	// The refusals were audited.
	s.waitEvent(t, created.UID, "Warning AWSUnavailable", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeWarning && e.Reason == "AWSUnavailable"
	})
	s.waitEvent(t, created.UID, "Warning ResyncFailed IAMUnavailable", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeWarning && e.Action == "ResyncFailed" && e.Reason == "IAMUnavailable"
	})
	outage := time.Since(outageStart)

	// IAM is back: the next resync pass writes the new Ops ARN, and an
	// unknown name is now refused because it does not exist.
	iam.Clear()
	recovered := time.Now()
	framework.WaitFor(t, 5*resyncInterval+30*time.Second, func() (bool, error) {
		return storedARNs(s.get(t))["Ops"] == newOpsARN, nil
	})
	recovery := time.Since(recovered)
	if got := storedARNs(s.get(t)); got["Admin"] != adminARN {
		t.Errorf("after the recovery: Admin %s, want %s", got["Admin"], adminARN)
	}
	cm := s.get(t)
	cm.Data["mapRoles"] += fNewTeamEntry
	err = cp.Client.Update(ctx, cm)
	if err == nil || !strings.Contains(err.Error(), `the permission set "NewTeam" has no role in this account`) {
		t.Errorf("with IAM back, an unknown permission set: %v, want refused as not existing", err)
	}
	for _, f := range figures {
		t.Logf("reliability: IAM outage, %s", f)
	}
	t.Logf("reliability: IAM outage of %v: %d writes admitted from the cache, %d IAM requests failed by injection, 0 half-written; resync wrote the re-provisioned ARN %v after IAM came back",
		outage.Round(time.Second), writes, iam.Injected.Load(), recovery.Round(100*time.Millisecond))
}

// --- start without IMDS and STS ------------------------------------------

// testStartWithoutIMDSAndSTS: instance metadata does not answer (nothing
// listens) and STS fails. The server serves but is not ready (/readyz says
// the AWS identity cannot be read, and why), logs what it lacks (the
// account; the node role), resolves permission sets (IAM works), and
// refuses $ACCOUNTID saying STS failed; once STS answers, it gets ready and
// $ACCOUNTID resolves, without a restart.
func testStartWithoutIMDSAndSTS(t *testing.T, cp *framework.ControlPlane) {
	ctx := context.Background()
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{awsemu.SSORole("Admin", "0123456789abcdef", whRegion), {Name: "eks-node-group-1"}}})
	emu.InjectFault("sts:*", awsemu.Fault{Code: "ServiceUnavailable", Message: "STS is down"})
	closed := closedAddr(t)
	start := time.Now()
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, WaitPath: "/healthz",
		Env:  map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://" + closed + "/"},
		Args: []string{"--break-glass-group=" + whBreakGlass}})
	serving := time.Since(start)
	s := &webhookSuite{cp: cp, emu: emu, wh: wh}

	logs := wh.Logs()
	for _, want := range [][]string{
		{"cannot tell the cluster's AWS account", "sts:GetCallerIdentity", "STS is down"},
		{"the node role is unknown", "cannot read EC2 instance metadata (IMDS)", "--node-role-arn"},
	} {
		if !logHas(logs, want...) {
			t.Errorf("no log line with %q:\n%s", want, logs)
		}
	}
	// Not ready, and the log says why (the probe's answer withholds it).
	if code, body := wh.Get(t, wh.HealthAddr, "/readyz?verbose"); code != 500 || !strings.Contains(body, "[-]identity failed") {
		t.Errorf("/readyz with STS down: %d %s; want 500 from the identity check", code, body)
	}
	framework.WaitFor(t, 10*time.Second, func() (bool, error) { // the log is written as the probe answers
		return logHas(wh.Logs(), "not ready", "the AWS identity cannot be read", "sts:GetCallerIdentity", "STS is down"), nil
	})

	// Permission sets resolve (IAM answers); no node entry is invented.
	s.resetAWSAuth(t, "- permissionset: Admin\n  username: admin\n  groups: [system:masters]\n", "")
	stored := s.get(t)
	roles := awsauth.Lint(stored.Data).Roles
	if len(roles) != 1 || roles[0].ARN != whARN("AWSReservedSSO_Admin_0123456789abcdef") {
		t.Errorf("stored mapRoles without STS and IMDS:\n%s", stored.Data["mapRoles"])
	}

	// $ACCOUNTID needs STS: refused, saying so.
	withAccount := stored.DeepCopy()
	withAccount.Data["mapUsers"] = "- userarn: arn:aws:iam::$ACCOUNTID:user/alice\n  username: alice\n"
	err := cp.Client.Update(ctx, withAccount)
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("$ACCOUNTID with STS down: %v, want a denial", err)
	}
	assertContains(t, "the refusal", err.Error(), "sts:GetCallerIdentity failed")
	if s.get(t).ResourceVersion != stored.ResourceVersion {
		t.Error("a refused write changed aws-auth")
	}

	// STS is back: the same write is admitted, with the account filled in,
	// once the call in flight (backing off between retries) asks again.
	emu.ClearFaults()
	back := time.Now()
	var lastErr error
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		lastErr = cp.Client.Update(ctx, withAccount.DeepCopy())
		if lastErr != nil && !strings.Contains(lastErr.Error(), "sts:GetCallerIdentity") {
			return false, fmt.Errorf("$ACCOUNTID once STS answers: %w", lastErr)
		}
		return lastErr == nil, nil
	})
	resolvedAfter := time.Since(back)
	framework.WaitFor(t, 10*time.Second, func() (bool, error) {
		code, _ := wh.Get(t, wh.HealthAddr, "/readyz")
		return code == 200, nil
	})
	readyAfter := time.Since(back)
	if got := s.get(t).Data["mapUsers"]; !strings.Contains(got, "arn:aws:iam::"+whAccount+":user/alice") {
		t.Errorf("mapUsers: %s", got)
	}
	t.Logf("reliability: start with IMDS unreachable and STS failing: serving in %v but not ready (/readyz names sts:GetCallerIdentity), permission sets served, $ACCOUNTID refused as STS unavailable, then resolved %v and ready %v after STS came back, without a restart (%d STS calls)",
		serving.Round(100*time.Millisecond), resolvedAfter.Round(100*time.Millisecond), readyAfter.Round(100*time.Millisecond), emu.Calls("sts:GetCallerIdentity"))
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// logHas reports whether one line of logs contains every string.
func logHas(logs string, wants ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		ok := true
		for _, w := range wants {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// --- concurrent writers ------------------------------------------------------

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", name, s)
		}
		return n
	}
	return def
}

func userEntry(name string) string {
	return "- userarn: arn:aws:iam::" + whAccount + ":user/" + name + "\n  username: " + name + "\n"
}

// testConcurrentWriters: writers edit aws-auth at the same time while the
// permission set Ops is re-provisioned over and over and the resync loop
// (every 200ms) rewrites mapRoles. First two client-go writers add entries
// to mapUsers, each retrying on conflict as clients must; then `kubectl
// edit` (an editor script) adds entries, racing the loop. Every entry of
// every writer is stored exactly once and the last ARN of Ops is stored:
// no update is lost. The rounds are AWS_AUTH_WEBHOOK_CONFLICT_ROUNDS per
// client writer (default 100; a fifth of it for kubectl edit).
//
// kubectl edit sends a patch of just the data keys it changed, without a
// resourceVersion: it races the loop (which writes mapRoles) safely, but
// two people editing the same key with kubectl edit at once is a race
// kubectl itself loses, so it is not part of this test.
func testConcurrentWriters(t *testing.T, cp *framework.ControlPlane) {
	ctx := context.Background()
	rounds := envInt(t, "AWS_AUTH_WEBHOOK_CONFLICT_ROUNDS", 100)
	kubectlRounds := max(rounds/5, 1)
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Ops", "2222222222222222", whRegion),
			{Name: "github-deployer"}, {Name: "eks-node-group-1"},
		}})
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, Args: []string{
		"--resync-interval=200ms", "--break-glass-group=" + whBreakGlass}})
	s := &webhookSuite{cp: cp, emu: emu, wh: wh}
	s.resetAWSAuth(t, whOpsRoles("deployer"), userEntry("seed"))
	kubeconfig := cp.Kubeconfig(t)

	var (
		mu        sync.Mutex
		errs      []error
		conflicts = map[string]int{}
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Retry until it works, 5-10ms apart (no Cap: reaching it would end
	// the retries).
	backoff := wait.Backoff{Steps: 1000, Duration: 5 * time.Millisecond, Factor: 1, Jitter: 1}
	clientWriter := func(name string) {
		for i := 1; i <= rounds; i++ {
			entry := userEntry(fmt.Sprintf("%s-%03d", name, i))
			attempts := 0
			err := retry.RetryOnConflict(backoff, func() error {
				attempts++
				cm := &corev1.ConfigMap{}
				if err := cp.Client.Get(ctx, whAWSAuth, cm); err != nil {
					return err
				}
				cm.Data["mapUsers"] += entry
				return cp.Client.Update(ctx, cm)
			})
			if err != nil {
				fail(fmt.Errorf("%s round %d: %w", name, i, err))
				return
			}
			mu.Lock()
			conflicts[name] += attempts - 1
			mu.Unlock()
		}
	}
	editDir := t.TempDir()
	kubectlWriter := func() {
		for i := 1; i <= kubectlRounds; i++ {
			name := fmt.Sprintf("kubectl-%03d", i)
			script := filepath.Join(editDir, name+".sh")
			// The editor inserts the entry at the top of mapUsers, in the
			// text kubectl shows.
			sed := fmt.Sprintf(`/^  mapUsers: |/a\
    - userarn: arn:aws:iam::%s:user/%s\
      username: %s
`, whAccount, name, name)
			if err := os.WriteFile(script+".sed", []byte(sed), 0o600); err != nil {
				fail(err)
				return
			}
			if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sed -i -f '"+script+".sed' \"$1\"\n"), 0o700); err != nil {
				fail(err)
				return
			}
			for attempt := 1; ; attempt++ {
				cmd := exec.Command(filepath.Join(cp.Assets, "kubectl"), "--kubeconfig", kubeconfig, "edit", "configmap", "aws-auth", "-n", "kube-system")
				cmd.Env = append(os.Environ(), "KUBE_EDITOR="+script, "TMPDIR="+editDir)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				if err == nil {
					break
				}
				// What a person sees when someone saved first: try again.
				if strings.Contains(stderr.String(), "the object has been modified") && attempt < 50 {
					mu.Lock()
					conflicts["kubectl edit"]++
					mu.Unlock()
					continue
				}
				fail(fmt.Errorf("kubectl edit %s (attempt %d): %w\n%s", name, attempt, err, stderr.String()))
				return
			}
		}
	}
	// race runs the writers while Identity Center re-provisions Ops every
	// 300ms, and returns the last Ops role.
	rotations := 0
	race := func(writers ...func()) string {
		var wg sync.WaitGroup
		for _, w := range writers {
			wg.Go(w)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		last := ""
		for {
			select {
			case <-done:
				return last
			case <-time.After(300 * time.Millisecond):
				name, err := emu.RotatePermissionSet("Ops")
				if err != nil {
					t.Error(err)
					continue
				}
				rotations++
				last = name
			}
		}
	}
	checkErrs := func() {
		for _, err := range errs {
			t.Error(err)
		}
		if len(errs) > 0 {
			t.FailNow()
		}
	}
	caughtUp := func(lastOps string) {
		if lastOps != "" {
			framework.WaitFor(t, 30*time.Second, func() (bool, error) {
				return storedARNs(s.get(t))["Ops"] == whARN(lastOps), nil
			})
		}
	}

	m0 := wh.Metrics(t)
	start := time.Now()
	caughtUp(race(func() { clientWriter("client-a") }, func() { clientWriter("client-b") }))
	checkErrs()
	caughtUp(race(kubectlWriter))
	checkErrs()
	took := time.Since(start)

	stored := s.get(t)
	users := awsauth.Lint(stored.Data).Users
	count := map[string]int{}
	for _, u := range users {
		count[u.Username]++
	}
	want := []string{"seed"}
	for i := 1; i <= rounds; i++ {
		want = append(want, fmt.Sprintf("client-a-%03d", i), fmt.Sprintf("client-b-%03d", i))
	}
	for i := 1; i <= kubectlRounds; i++ {
		want = append(want, fmt.Sprintf("kubectl-%03d", i))
	}
	lost := 0
	for _, u := range want {
		switch count[u] {
		case 1:
		case 0:
			lost++
			t.Errorf("the entry of %s was lost", u)
		default:
			t.Errorf("the entry of %s is stored %d times", u, count[u])
		}
	}
	if len(users) != len(want) {
		t.Errorf("%d user entries stored, want %d", len(users), len(want))
	}
	// The deployer entry, edited by nobody, is as it was.
	assertContains(t, "mapRoles", stored.Data["mapRoles"], "username: deployer\n")
	m := wh.Metrics(t)
	delta := func(name string, labels map[string]string) float64 { return m.Sum(name, labels) - m0.Sum(name, labels) }
	resyncConflicts := delta("aws_auth_webhook_resync_conflicts_total", nil)
	rewrites := delta("aws_auth_webhook_resync_runs_total", map[string]string{"result": "changed"})
	// A pass whose five conflict retries all lose is audited and retried
	// at the next interval: counted, not a failure.
	gaveUp := delta("aws_auth_webhook_resync_runs_total", map[string]string{"result": "failed"})
	total := conflicts["client-a"] + conflicts["client-b"] + conflicts["kubectl edit"] + int(resyncConflicts)
	t.Logf("reliability: concurrent writers: %d writes (2 clients x %d, then kubectl edit x %d) and %v resync rewrites of %d re-provisionings in %v; conflicts retried: %d (client-a %d, client-b %d, kubectl edit %d, resync loop %v; resync passes deferred to the next interval: %v); updates lost: %d",
		2*rounds+kubectlRounds, rounds, kubectlRounds, rewrites, rotations, took.Round(100*time.Millisecond),
		total, conflicts["client-a"], conflicts["client-b"], conflicts["kubectl edit"], resyncConflicts, gaveUp, lost)
	if conflicts["client-a"]+conflicts["client-b"] == 0 {
		t.Errorf("no client write conflicted: the writers did not race")
	}
}

// --- leader election ----------------------------------------------------------

// leaseHolder is the holder of the leader-election Lease, "" if none.
func leaseHolder(t *testing.T, cp *framework.ControlPlane) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: "kube-system", Name: "aws-auth-webhook"}, l)
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// testLeaderKilled: two replicas with leader election. A is the leader; B
// is the replica the apiserver calls. While a client writes aws-auth back
// to back through B, A is SIGKILLed just after a resync pass (mid-interval,
// its Lease not released) and a permission set is re-provisioned. B takes
// the Lease when it expires and its first pass writes the new ARN. No
// admission request failed before, during or after the takeover; B, not yet
// the leader, had warmed its cache at start and answered from it.
func testLeaderKilled(t *testing.T, cp *framework.ControlPlane) {
	ctx := context.Background()
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{
			awsemu.SSORole("Ops", "2222222222222222", whRegion),
			{Name: "github-deployer"}, {Name: "eks-node-group-1"},
		}})
	args := []string{"--leader-elect=true", "--leader-election-namespace=kube-system",
		"--resync-interval=3s", "--break-glass-group=" + whBreakGlass}
	// A Lease left behind would make A wait for it to expire.
	_ = cp.Client.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth-webhook"}})

	port, err := strconv.Atoi(strings.TrimPrefix(closedAddr(t), "127.0.0.1:"))
	if err != nil {
		t.Fatal(err)
	}
	a := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, Port: port, Args: args})
	isLeader := func(w *framework.WebhookProcess) bool {
		return w.Metrics(t).Sum("leader_election_master_status", nil) == 1
	}
	runs := func(w *framework.WebhookProcess) float64 {
		return w.Metrics(t).Sum("aws_auth_webhook_resync_runs_total", nil)
	}
	framework.WaitFor(t, 30*time.Second, func() (bool, error) { return isLeader(a), nil })
	holderA := leaseHolder(t, cp)
	b := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, Args: args})
	s := &webhookSuite{cp: cp, emu: emu, wh: b}
	// B lists the SSO roles at start although it is not the leader (the
	// cache warm-up must not wait for leadership), then admits from that
	// cache.
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		return b.Metrics(t).Sum("aws_auth_webhook_sso_role_listings_total", nil) >= 1, nil
	})
	s.resetAWSAuth(t, whOpsRoles("deployer-0"), "")
	oldOps := storedARNs(s.get(t))["Ops"]

	// B is not the leader, yet listed the SSO roles at start, and answers
	// admissions from that cache.
	bm := b.Metrics(t)
	if isLeader(b) || runs(b) != 0 {
		t.Fatalf("B leads or resyncs while A holds the Lease")
	}
	if n := bm.Sum("aws_auth_webhook_sso_role_listings_total", nil); n < 1 {
		t.Errorf("B, not the leader, has not warmed its cache (%v listings)", n)
	}
	if n := bm.Sum("aws_auth_webhook_permission_set_cache_misses_total", nil); n != 0 {
		t.Errorf("B's admissions missed the cache %v times", n)
	}

	// The load: back-to-back writes through the apiserver (and B).
	type result struct {
		at  time.Time
		err error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := renameDeployer(ctx, cp, i)
			mu.Lock()
			results = append(results, result{time.Now(), err})
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		load.Wait()
	}()

	// Kill A right after one of its passes: mid-interval.
	framework.WaitFor(t, 30*time.Second, func() (bool, error) { return runs(a) >= 1, nil })
	n := runs(a)
	framework.WaitFor(t, 30*time.Second, func() (bool, error) { return runs(a) > n, nil })
	a.Kill(t)
	killed := time.Now()
	newOps, err := emu.RotatePermissionSet("Ops")
	if err != nil {
		t.Fatal(err)
	}

	var leaseTaken, rewritten time.Duration
	framework.WaitFor(t, 60*time.Second, func() (bool, error) {
		if h := leaseHolder(t, cp); leaseTaken == 0 && h != "" && h != holderA {
			leaseTaken = time.Since(killed)
		}
		if rewritten == 0 && storedARNs(s.get(t))["Ops"] == whARN(newOps) {
			rewritten = time.Since(killed)
		}
		return leaseTaken > 0 && rewritten > 0, nil
	})
	// Keep the load going a little past the takeover.
	time.Sleep(time.Second)
	close(stop)
	load.Wait()

	if !isLeader(b) || runs(b) < 1 {
		t.Errorf("B did not take over the resync loop (leader %v, passes %v)", isLeader(b), runs(b))
	}
	if !logHas(b.Logs(), "Successfully acquired lease") {
		t.Errorf("B's log does not say it acquired the lease")
	}
	if oldOps == whARN(newOps) {
		t.Fatal("the rotation did not change the ARN")
	}
	var failed []string
	before, during, after := 0, 0, 0
	for _, r := range results {
		switch {
		case r.at.Before(killed):
			before++
		case r.at.Before(killed.Add(rewritten)):
			during++
		default:
			after++
		}
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.at.Format(time.StampMilli), r.err))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d admission-guarded writes failed:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	if during == 0 {
		t.Errorf("no write happened during the takeover")
	}
	t.Logf("reliability: leader SIGKILLed mid-interval: the other replica took the Lease after %v and resynced after %v (lease duration 15s); writes through the webhook: %d before, %d during the takeover, %d after, %d failed",
		leaseTaken.Round(100*time.Millisecond), rewritten.Round(100*time.Millisecond), before, during, after, len(failed))
}

// --- certificate renewal -------------------------------------------------------

// testCertificateRenewalUnderLoad: the webhook serves a certificate of a CA
// the apiserver trusts; while writes go through the apiserver and a client
// makes a fresh TLS handshake with every admission request, tls.crt and
// tls.key are rewritten in place with a new certificate of the same CA (as
// cert-manager's renewal does). The server switches without a restart and
// not one request fails: not during the moment the two files disagree, nor
// after.
func testCertificateRenewalUnderLoad(t *testing.T, cp *framework.ControlPlane) {
	ctx := context.Background()
	ca := framework.NewCA(t)
	certDir := t.TempDir()
	crt1, key1, serial1 := ca.Issue(t)
	framework.WriteServingCert(t, certDir, crt1, key1)
	cp.AddWebhookCA(t, "aws-auth-webhook", ca.PEM)
	emu := framework.StartEmulator(t, awsemu.Config{AccountID: whAccount, Region: whRegion, NodeRoleName: "eks-node-group-1",
		Roles: []awsemu.Role{awsemu.SSORole("Ops", "2222222222222222", whRegion), {Name: "github-deployer"}, {Name: "eks-node-group-1"}}})
	wh := cp.StartWebhook(t, framework.WebhookOptions{Emulator: emu, CertDir: certDir, Args: []string{
		"--resync-interval=1h", "--break-glass-group=" + whBreakGlass}})
	s := &webhookSuite{cp: cp, emu: emu, wh: wh}
	// The apiserver picks up the new caBundle within moments: a dry-run
	// create goes through both webhooks (before the storage says the
	// object exists).
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: whAWSAuth.Namespace, Name: whAWSAuth.Name},
			Data: map[string]string{"mapRoles": whOpsRoles("deployer-0")}}
		err := cp.Client.Create(ctx, cm, client.DryRunAll)
		return err == nil || apierrors.IsAlreadyExists(err), nil
	})
	s.resetAWSAuth(t, whOpsRoles("deployer-0"), "")

	direct := framework.AdmissionClient(t, ca.PEM, true)
	probe := framework.AdmissionReview(t, admissionv1.Update, "probe", s.get(t), s.get(t))
	var (
		mu                  sync.Mutex
		apiOK, oldOK, newOK int
		failures            []string
		firstNew            time.Time
		serial2             atomic.Pointer[string]
		stop                = make(chan struct{})
		load                sync.WaitGroup
	)
	failf := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	load.Go(func() { // through the apiserver
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := renameDeployer(ctx, cp, i)
			if err != nil {
				failf("through the apiserver: %v", err)
				continue
			}
			mu.Lock()
			apiOK++
			mu.Unlock()
		}
	})
	for range 2 { // direct, a new TLS handshake every time
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, resp, st, err := wh.PostAdmission(direct, "/mutate", probe)
				if err != nil || code != 200 || !resp.Allowed {
					failf("direct: HTTP %d, %+v, %v", code, resp, err)
					continue
				}
				serial := st.PeerCertificates[0].SerialNumber.String()
				mu.Lock()
				switch {
				case serial == serial1.String():
					oldOK++
				case serial2.Load() != nil && serial == *serial2.Load():
					newOK++
					if firstNew.IsZero() {
						firstNew = time.Now()
					}
				default:
					failures = append(failures, "direct: served an unknown certificate, serial "+serial)
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		load.Wait()
	}()
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return apiOK, oldOK, newOK
	}
	framework.WaitFor(t, 30*time.Second, func() (bool, error) {
		a, o, _ := counts()
		return a >= 20 && o >= 50, nil
	})

	crt2, key2, s2 := ca.Issue(t)
	s2str := s2.String()
	serial2.Store(&s2str)
	api0, _, _ := counts()
	written := time.Now()
	framework.WriteServingCert(t, certDir, crt2, key2)
	framework.WaitFor(t, 60*time.Second, func() (bool, error) {
		a, _, n := counts()
		return n >= 100 && a >= api0+20, nil
	})
	close(stop)
	load.Wait()

	apiN, oldN, newN := counts()
	for _, f := range failures {
		t.Error(f)
	}
	served := firstNew.Sub(written)
	t.Logf("reliability: certificate replaced under load: %d requests (%d writes through the apiserver, %d direct TLS handshakes: %d with the old certificate, %d with the new), %d failed; the new certificate was served %v after the files were rewritten, without a restart",
		apiN+oldN+newN, apiN, oldN+newN, oldN, newN, len(failures), served.Round(10*time.Millisecond))
	if wh.Exited() {
		t.Error("the webhook exited")
	}
}

// deployerName matches the username of the deployer entry the load loops
// rename on every write.
var deployerName = regexp.MustCompile(`username: deployer-\S+`)

// renameDeployer writes aws-auth through the apiserver (and so through the
// webhook): the deployer entry's username becomes deployer-<i>, retried on
// conflict as any careful client does.
func renameDeployer(ctx context.Context, cp *framework.ControlPlane, i int) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cm := &corev1.ConfigMap{}
		if err := cp.Client.Get(ctx, whAWSAuth, cm); err != nil {
			return err
		}
		cm.Data["mapRoles"] = deployerName.ReplaceAllString(cm.Data["mapRoles"], fmt.Sprintf("username: deployer-%d", i))
		return cp.Client.Update(ctx, cm)
	})
}
