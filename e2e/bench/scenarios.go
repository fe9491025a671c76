package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	admissionh "github.com/aws-auth-webhook/aws-auth-webhook/pkg/admission"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// controlPlane is kube-apiserver + etcd (envtest), which serve's manager
// needs.
type controlPlane struct {
	env        *envtest.Environment
	cfg        *rest.Config
	kubeconfig string
	client     client.Client
}

func startControlPlane(assets, dir string) (*controlPlane, error) {
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("starting kube-apiserver + etcd from %s: %w", assets, err)
	}
	cp := &controlPlane{env: env, cfg: cfg}
	user, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var data []byte
		if data, err = user.KubeConfig(); err == nil {
			cp.kubeconfig = filepath.Join(dir, "kubeconfig")
			err = os.WriteFile(cp.kubeconfig, data, 0o600)
		}
	}
	if err == nil {
		cp.client, err = client.New(cfg, client.Options{})
	}
	if err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

func (cp *controlPlane) stop() { _ = cp.env.Stop() }

// putAWSAuth creates or replaces kube-system/aws-auth.
func (cp *controlPlane) putAWSAuth(ctx context.Context, data map[string]string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}, Data: data}
	err := cp.client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		cur := &corev1.ConfigMap{}
		if err := cp.client.Get(ctx, client.ObjectKeyFromObject(cm), cur); err != nil {
			return err
		}
		cur.Data = data
		return cp.client.Update(ctx, cur)
	}
	return err
}

func startEmulator(roles int) (*awsemu.Server, error) {
	emu := awsemu.New(awsemu.Config{AccountID: account, Region: region, Roles: ssoRoles(roles)})
	if err := emu.Start(); err != nil {
		return nil, err
	}
	return emu, nil
}

// startServe runs `aws-auth-webhook serve` against cp and emu with a fresh
// certificate; it returns once /readyz answers.
func startServe(bin, name, work string, cp *controlPlane, emu *awsemu.Server, lim limits, extra ...string) (*proc, []byte, error) {
	certDir, err := os.MkdirTemp(work, "certs-")
	if err != nil {
		return nil, nil, err
	}
	ca, err := writeCert(certDir)
	if err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	hp, _ := freePort()
	mp, _ := freePort()
	health, metrics := fmt.Sprintf("127.0.0.1:%d", hp), fmt.Sprintf("127.0.0.1:%d", mp)
	args := append([]string{"serve",
		"--kubeconfig=" + cp.kubeconfig,
		fmt.Sprintf("--port=%d", port),
		"--cert-dir=" + certDir,
		"--health-probe-bind-address=" + health,
		"--metrics-bind-address=" + metrics,
		"--leader-elect=false",
		"--node-role-arn=" + nodeRole,
	}, extra...)
	var env []string
	for k, v := range emu.Env() {
		env = append(env, k+"="+v)
	}
	env = append(env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PROFILE=", "KUBECONFIG=")
	lim.env = append(env, lim.env...)
	p, err := start(name, bin, args, lim, port, health, work)
	if err != nil {
		return nil, nil, err
	}
	p.metrics = metrics
	return p, ca, nil
}

// addLoadRows adds a run's /mutate and /validate rows to lt.
func addLoadRows(lt *table, docName string, conc, round int, server string, res pairResult, peak int64) {
	for _, pr := range []struct {
		path string
		r    loadResult
	}{{"/mutate", res.mutate}, {"/validate", res.validate}} {
		errs := strconv.Itoa(pr.r.Errors)
		if pr.r.FirstErr != "" {
			errs += " (" + trunc(pr.r.FirstErr, 60) + ")"
		}
		peakText := "-"
		if peak > 0 {
			peakText = mib(peak)
		}
		lt.add(docName, strconv.Itoa(conc), strconv.Itoa(round), server, pr.path,
			fmt.Sprintf("%.1f", pr.r.RPS()), ms(pr.r.Pct(50)), ms(pr.r.Pct(90)), ms(pr.r.Pct(99)), ms(pr.r.Max()), errs, peakText)
	}
}

// loadTable is the table addLoadRows fills.
func loadTable(d time.Duration) *table {
	return &table{title: fmt.Sprintf("Admission over TLS, loopback: each editor sends an edit to /mutate, then what it became to /validate (%s runs, every request different)", d),
		head: []string{"document", "conc", "round", "server", "path", "req/s", "p50", "p90", "p99", "max", "errors", "peak RSS"}}
}

func serveCertDir(p *proc) string {
	for _, a := range p.cmd.Args {
		if v, ok := strings.CutPrefix(a, "--cert-dir="); ok {
			return v
		}
	}
	return ""
}

// callBudget counts, in the emulator, the AWS calls serve makes.
func callBudget(ctx context.Context, cp *controlPlane, bin, work string, rep *report) error {
	t := &table{title: "AWS call budget (counted by the emulator; 100-entry aws-auth in the cluster; ListRoles MaxItems=1000)",
		head: []string{"SSO roles", "phase", "iam:ListRoles", "sts:GetCallerIdentity", "other AWS", "note"}}
	for _, roles := range []int{10, 300, 3000} {
		if err := budgetFor(ctx, cp, bin, work, roles, t); err != nil {
			return err
		}
	}
	rep.tables = append(rep.tables, t)
	return nil
}

func budgetFor(ctx context.Context, cp *controlPlane, bin, work string, roles int, t *table) error {
	emu, err := startEmulator(roles)
	if err != nil {
		return err
	}
	defer emu.Close()
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		return err
	}
	w, err := buildBudgetWorkload(ctx, roles, awsidentity.New(awsCfg, awsidentity.Options{}))
	if err != nil {
		return err
	}
	stored, _ := document(100, w.used)
	if err := cp.putAWSAuth(ctx, stored); err != nil {
		return err
	}
	row := func(phase string, calls map[string]int, div int, note string) {
		other := 0
		for k, v := range calls {
			if k != "iam:ListRoles" && k != "sts:GetCallerIdentity" {
				other += v
			}
		}
		f := func(n int) string {
			if div <= 1 {
				return strconv.Itoa(n)
			}
			return fmt.Sprintf("%.2f", float64(n)/float64(div))
		}
		t.add(strconv.Itoa(roles), phase, f(calls["iam:ListRoles"]), f(calls["sts:GetCallerIdentity"]), f(other), note)
	}

	// Cold start and warm admissions (no resync pass during them).
	emu.ResetCalls()
	serve, ca, err := startServe(bin, fmt.Sprintf("serve-budget-%d", roles), work, cp, emu, limits{}, "--resync-interval=1h")
	if err != nil {
		return err
	}
	atReady := emu.AllCalls()
	if err := waitRuns(ctx, serve, 1); err != nil {
		serve.stop()
		return err
	}
	settle(emu)
	row("start, to ready", atReady, 1, fmt.Sprintf("ready in %s", serve.ready.Round(time.Millisecond)))
	row("start, until the first resync pass is done", emu.AllCalls(), 1, "warm-up listing + first pass")
	emu.ResetCalls()
	hc, err := newClient(ca, 1)
	if err != nil {
		serve.stop()
		return err
	}
	const n = 50
	edit := func() error {
		mb, vb := w.requests(int(edits.Add(1)))
		if err := post(ctx, hc, serve.url()+"/mutate", mb); err != nil {
			return err
		}
		return post(ctx, hc, serve.url()+"/validate", vb)
	}
	if err := edit(); err != nil { // opens the connection
		serve.stop()
		return err
	}
	emu.ResetCalls()
	for range n {
		if err := edit(); err != nil {
			serve.stop()
			return err
		}
	}
	row("per admission, warm cache", emu.AllCalls(), 2*n, fmt.Sprintf("%d edits: /mutate + /validate each", n))
	serve.stop()

	// Resync passes.
	serve, _, err = startServe(bin, fmt.Sprintf("serve-resync-%d", roles), work, cp, emu, limits{}, "--resync-interval=2s")
	if err != nil {
		return err
	}
	defer serve.stop()
	if err := waitRuns(ctx, serve, 1); err != nil {
		return err
	}
	base, _ := runsTotal(serve)
	emu.ResetCalls()
	if err := waitRuns(ctx, serve, base+3); err != nil {
		return err
	}
	row("per resync pass", emu.AllCalls(), 3, "average of 3 passes")
	serve.stop()

	// 50 admissions missing the cache at once, in process with a clock
	// moved past the cache's TTL.
	calls, err := concurrentMisses(ctx, emu, w, 50)
	if err != nil {
		return err
	}
	row("50 admissions missing the cache at once", calls, 1, "in-process handlers, cache expired; all 50 answered")
	return nil
}

// buildBudgetWorkload is the 100-entry workload for an account of roles
// SSO roles: the document uses some, edits add others.
func buildBudgetWorkload(ctx context.Context, roles int, r awsauth.Resolver) (*workload, error) {
	return buildWorkloadPS(ctx, fmt.Sprintf("b%d", roles), 100, roles, r)
}

func post(ctx context.Context, hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil || !ar.Response.Allowed {
		return fmt.Errorf("%s: not allowed (HTTP %d): %w %+v", url, resp.StatusCode, err, ar.Response)
	}
	return nil
}

// runsTotal reads aws_auth_webhook_resync_runs_total (every result).
func runsTotal(p *proc) (int, error) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "aws_auth_webhook_resync_runs_total") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return int(total), nil
}

func waitRuns(ctx context.Context, p *proc, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if got, err := runsTotal(p); err == nil && got >= n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: fewer than %d resync passes within 60s; log: %s", p.name, n, tail(p.logPath))
}

// settle waits until the emulator has seen no call for 500ms.
func settle(emu *awsemu.Server) {
	last, quiet := -1, time.Now()
	for time.Since(quiet) < 500*time.Millisecond {
		n := 0
		for _, v := range emu.AllCalls() {
			n += v
		}
		if n != last {
			last, quiet = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// concurrentMisses sends n mutate requests at once to the admission
// handlers (in process, so the clock can be moved) after the resolver's
// cache has expired, and returns the AWS calls they made.
func concurrentMisses(ctx context.Context, emu *awsemu.Server, w *workload, n int) (map[string]int, error) {
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	// A listing of the bench's few roles stays within the IAM rate limit's
	// burst, so nothing waits on this clock; it only moves the cache's.
	clk := clocktesting.NewFakeClock(time.Now())
	resolver := awsidentity.New(awsCfg, awsidentity.Options{Clock: clk})
	h := admissionh.New(admissionh.Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeRole}},
		resolver, audit.New(nil, logr.Discard(), prometheus.NewRegistry()), logr.Discard())
	if _, err := resolver.Account(ctx); err != nil {
		return nil, err
	}
	if err := resolver.Refresh(ctx); err != nil {
		return nil, err
	}
	clk.Step(awsidentity.DefaultTTL + time.Second)
	reqs := make([]admission.Request, n)
	for i := range reqs {
		mb, _ := w.requests(int(edits.Add(1)))
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(mb, &ar); err != nil {
			return nil, err
		}
		reqs[i] = admission.Request{AdmissionRequest: *ar.Request}
	}
	emu.ResetCalls()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for _, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if resp := h.Mutator().Handle(ctx, req); !resp.Allowed {
				errs <- fmt.Errorf("denied: %v", resp.Result)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return emu.AllCalls(), nil
}
