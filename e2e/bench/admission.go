package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// say prints a progress line on stderr (the report goes to stdout).
func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// scenario is one load run's shape.
type scenario struct {
	w    *workload
	conc int
}

func (sc scenario) key() string { return fmt.Sprintf("%s/%d", sc.w.name, sc.conc) }

// servers is how the load phase starts its servers: under the chart's
// memory limit or without one, and on every CPU while the load generator
// is pinned to one.
type servers struct {
	cgroup *memCgroup // nil: GOMEMLIMIT stands in for the cgroup
	pin    *pinning   // nil: not pinned
	how    string     // how the chart's limit is applied, for the report
}

func (s *servers) limits(chart bool) limits {
	var l limits
	if s.pin != nil {
		l.wrap = append(l.wrap, "--cpus", s.pin.cpuList())
	}
	if chart && s.cgroup != nil {
		l.wrap = append(l.wrap, "--cgroup", s.cgroup.dir)
	} else if chart {
		l.env = append(l.env, "GOMEMLIMIT="+chartGOMEMLIMIT)
	}
	return l
}

func newServers(c config) *servers {
	s := &servers{how: "GOMEMLIMIT=" + chartGOMEMLIMIT + " in its environment (what serve sets itself under the chart's 128Mi; no cgroup)"}
	if c.cgroup {
		cg, err := newMemCgroup()
		if err != nil {
			say("%v; serve runs with GOMEMLIMIT=%s instead", err, chartGOMEMLIMIT)
		} else {
			s.cgroup = cg
			s.how = "inside " + cg.String() + ", from which serve sets GOMEMLIMIT itself (automemlimit)"
		}
	}
	pin, err := pinLoadGenerator()
	if err != nil {
		say("the load generator is NOT pinned: %v", err)
	} else {
		s.pin = pin
	}
	return s
}

func (s *servers) close() {
	if s.pin != nil {
		s.pin.unpin()
	}
	if s.cgroup != nil {
		s.cgroup.remove()
	}
}

func (s *servers) pinText() string {
	if s.pin == nil {
		return "the load generator NOT pinned (fewer than 2 CPUs, or sched_setaffinity refused)"
	}
	return s.pin.String()
}

// memLimitLogged is the "Go memory limit" line serve logs at start: what
// GOMEMLIMIT it runs with and why.
func memLimitLogged(p *proc) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			Limit     int64  `json:"GOMEMLIMIT"`
			Source    string `json:"source"`
			Container int64  `json:"containerLimit"`
			Reason    string `json:"reason"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || !strings.HasPrefix(l.Msg, "Go memory limit") {
			continue
		}
		if l.Reason != "" {
			return "none: " + l.Reason
		}
		if l.Limit == 1<<63-1 {
			return "none (" + l.Source + ")"
		}
		s := fmt.Sprintf("GOMEMLIMIT %s from %s", mib(l.Limit), l.Source)
		if l.Container > 0 {
			s += fmt.Sprintf(" (container limit %s)", mib(l.Container))
		}
		return s
	}
	return "not logged"
}

// figures is what the table needs, filled as the phases run.
type figures struct {
	floor, ours  map[string][]pairResult // by scenario key, one per round
	floorIdle    int64
	peakChart    int64  // serve under the chart's limit, through the 1 MiB runs
	cgroupPeak   int64  // the cgroup's own peak charge, when in a cgroup
	peakNoLimit  int64  // serve without a limit, through the same runs
	idle2500     int64  // serve idle with 2,500 SSO roles cached
	chartLimit   string // what serve logged under the chart's limit
	noLimit      string // what serve logged without one
	oursDied     string // serve under the chart's limit exited during the load
	rounds       int
	duration     time.Duration
	loadAvgStart string
}

// admissionLoad measures serve and the no-op floor side by side under the
// same requests, with serve under the chart's memory limit, then serve
// without a limit through the 1 MiB load, then serve idle with 2,500 SSO
// roles cached, then the hostile shapes.
func admissionLoad(ctx context.Context, c config, cp *controlPlane, bin, work string, rep *report) error {
	fig := &figures{floor: map[string][]pairResult{}, ours: map[string][]pairResult{}, rounds: c.rounds, duration: c.duration, loadAvgStart: loadAvg()}
	say("building the 100-entry and ~1 MiB workloads (checked against the engine)")
	big, _ := document(-1, 4000)
	emu, err := startEmulator(usedPS(big) + extraPS)
	if err != nil {
		return err
	}
	defer emu.Close()
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		return err
	}
	resolver := awsidentity.New(awsCfg, awsidentity.Options{})
	w100, err := buildWorkload(ctx, "e100", 100, resolver)
	if err != nil {
		return err
	}
	w1M, err := buildWorkload(ctx, "e1m", -1, resolver)
	if err != nil {
		return err
	}

	srv := newServers(c)
	defer srv.close()
	say("serve under the chart's memory limit: %s", srv.how)
	say("%s", srv.pinText())
	serve, ca, err := startServe(bin, "serve", work, cp, emu, srv.limits(true), "--resync-interval=1h")
	if err != nil {
		return err
	}
	defer serve.stop()
	fig.chartLimit = memLimitLogged(serve)
	say("serve is ready in %s; it logged: %s", serve.ready.Round(time.Millisecond), fig.chartLimit)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	noopPort, err := freePort()
	if err != nil {
		return err
	}
	// The same certificate as serve's, no memory limit: it needs none.
	noop, err := start("noop", self, []string{"noop", fmt.Sprintf("--port=%d", noopPort), "--cert-dir=" + serveCertDir(serve)}, srv.limits(false), noopPort, "", work)
	if err != nil {
		return err
	}
	defer noop.stop()
	time.Sleep(3 * time.Second) // settle: the warm-up listing, GC
	idle, _ := serve.memory()
	fig.floorIdle, _ = noop.memory()

	fp := &table{title: "Footprint of serve (VmRSS / VmHWM from /proc); under the chart's limit: " + srv.how,
		head: []string{"what", "value"}}
	fp.add("Go memory limit serve logged, under the chart's limit", fig.chartLimit)
	fp.add("start to ready (exec → /readyz 200, certificate present)", serve.ready.Round(time.Millisecond).String())
	fp.add("resident memory, idle after start (the load phase's account)", mib(idle))
	fp.add("resident memory of the no-op floor, idle", mib(fig.floorIdle))

	lt := loadTable(c.duration)
	rt := &table{title: "Ours relative to the floor (same run, same requests)",
		head: []string{"document", "conc", "round", "path", "p50 ours/floor", "p99 ours/floor", "CPU/request ours, floor"}}
	var scenarios []scenario
	for _, n := range []int{1, 16, 64} {
		scenarios = append(scenarios, scenario{w100, n})
	}
	for _, n := range []int{1, 4, 16} {
		scenarios = append(scenarios, scenario{w1M, n})
	}
	if c.only != nil {
		scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !c.only[sc.key()] })
	}
	run := func(target *proc, ca []byte, sc scenario, server string, round int) (pairResult, int64, error) {
		hc, err := newClient(ca, sc.conc)
		if err != nil {
			return pairResult{}, 0, err
		}
		defer hc.CloseIdleConnections()
		dur, warm := c.duration, 2*sc.conc
		if sc.w == w1M {
			dur, warm = 2*c.duration, sc.conc
		}
		say("round %d/%d: %s, %d entries (%s), concurrency %d, %s", round, c.rounds, server, sc.w.entries, kib(sc.w.bytes), sc.conc, dur)
		var cpu time.Duration
		measure := func() func() {
			before := target.cpu()
			return func() { cpu = target.cpu() - before }
		}
		peakFn := target.sampleRSS()
		res := load(ctx, hc, target.url(), sc.w, sc.conc, warm, dur, measure)
		res.cpu = cpu
		peak := peakFn()
		if ctx.Err() != nil {
			return res, peak, ctx.Err()
		}
		addLoadRows(lt, fmt.Sprintf("%d entries (%s)", sc.w.entries, kib(sc.w.bytes)), sc.conc, round, server, res, peak)
		return res, peak, nil
	}
	for round := 1; round <= c.rounds && fig.oursDied == ""; round++ {
		for _, sc := range scenarios {
			targets := []*proc{noop, serve}
			if round%2 == 0 {
				targets = []*proc{serve, noop}
			}
			var ours, floor pairResult
			for _, target := range targets {
				server := "floor (no-op)"
				if target == serve {
					server = "aws-auth-webhook"
				}
				res, peak, err := run(target, ca, sc, server, round)
				if err != nil {
					return err
				}
				if target == noop {
					floor = res
					fig.floor[sc.key()] = append(fig.floor[sc.key()], res)
					continue
				}
				ours = res
				fig.ours[sc.key()] = append(fig.ours[sc.key()], res)
				if sc.w == w1M {
					fig.peakChart = max(fig.peakChart, peak)
				}
				if !serve.alive() {
					fig.oursDied = fmt.Sprintf("serve exited during %d entries at concurrency %d (%v)", sc.w.entries, sc.conc, serve.err)
					if srv.cgroup != nil && srv.cgroup.ooms() > 0 {
						fig.oursDied += fmt.Sprintf("; the cgroup's OOM killer fired %d times", srv.cgroup.ooms())
					}
					say("%s", fig.oursDied)
				}
			}
			docName := fmt.Sprintf("%d entries (%s)", sc.w.entries, kib(sc.w.bytes))
			for _, pr := range []struct {
				path string
				o, b loadResult
			}{{"/mutate", ours.mutate, floor.mutate}, {"/validate", ours.validate, floor.validate}} {
				rt.add(docName, strconv.Itoa(sc.conc), strconv.Itoa(round), pr.path, ratio(pr.o.Pct(50), pr.b.Pct(50)), ratio(pr.o.Pct(99), pr.b.Pct(99)),
					msPrec(ours.cpuPerRequest())+", "+msPrec(floor.cpuPerRequest()))
			}
			if fig.oursDied != "" {
				break
			}
		}
	}
	if srv.cgroup != nil {
		fig.cgroupPeak = srv.cgroup.peak()
	}
	after, peakAll := serve.memory()
	fp.add("resident memory after the load runs", mib(after))
	fp.add("peak resident memory over the last run (VmHWM)", mib(peakAll))
	if fig.cgroupPeak > 0 {
		fp.add("the cgroup's peak charge over the whole load (what its OOM killer judges: RSS + page cache + kernel memory)", mib(fig.cgroupPeak))
	}
	serve.stop()
	noop.stop()
	if c.only != nil {
		if c.only["idle"] {
			if err := idleWithRoles(ctx, cp, bin, work, srv, fig, fp); err != nil {
				return err
			}
		}
		rep.tables = append(rep.tables, lt, rt, fp)
		return nil
	}

	// The same 1 MiB runs, one round, on a serve without any limit.
	say("serve without a memory limit: the ~1 MiB runs again, once each")
	free, freeCA, err := startServe(bin, "serve-nolimit", work, cp, emu, srv.limits(false), "--resync-interval=1h")
	if err != nil {
		return err
	}
	fig.noLimit = memLimitLogged(free)
	fp.add("Go memory limit serve logged, without a limit", fig.noLimit)
	for _, sc := range scenarios {
		if sc.w != w1M {
			continue
		}
		_, peak, err := run(free, freeCA, sc, "aws-auth-webhook, no limit", 1)
		if err != nil {
			free.stop()
			return err
		}
		fig.peakNoLimit = max(fig.peakNoLimit, peak)
	}
	free.stop()

	if err := idleWithRoles(ctx, cp, bin, work, srv, fig, fp); err != nil {
		return err
	}
	ht, err := hostileLoad(ctx, cp, bin, work, srv, emu)
	if err != nil {
		return err
	}
	rep.summary = fig.table(srv)
	rep.tables = append(rep.tables, lt, rt, fp, ht)
	return nil
}

// idleRoles is how many SSO roles the account has when serve's idle
// memory is measured: a large organisation's.
const idleRoles = 2500

// idleWithRoles starts serve (under the chart's limit) against an account
// of 2,500 SSO roles and a 100-entry aws-auth, warms it (the start-up
// listing, a resync pass, 20 admissions), then waits for its RSS to settle.
func idleWithRoles(ctx context.Context, cp *controlPlane, bin, work string, srv *servers, fig *figures, fp *table) error {
	say("idle footprint: serve with %d SSO roles in the account, warmed, until its RSS settles", idleRoles)
	emu, err := startEmulator(idleRoles)
	if err != nil {
		return err
	}
	defer emu.Close()
	awsCfg, err := emu.AWSConfig(ctx)
	if err != nil {
		return err
	}
	w, err := buildWorkloadPS(ctx, "idle", 100, idleRoles, awsidentity.New(awsCfg, awsidentity.Options{}))
	if err != nil {
		return err
	}
	stored, _ := document(100, w.used)
	if err := cp.putAWSAuth(ctx, stored); err != nil {
		return err
	}
	args := []string{"--resync-interval=1h"}
	if heapProfile != "" {
		args = append(args, "--pprof-bind-address=127.0.0.1:6065")
	}
	serve, ca, err := startServe(bin, "serve-idle", work, cp, emu, srv.limits(true), args...)
	if err != nil {
		return err
	}
	defer serve.stop()
	if err := waitRuns(ctx, serve, 1); err != nil {
		return err
	}
	hc, err := newClient(ca, 1)
	if err != nil {
		return err
	}
	for range 20 {
		mb, vb := w.requests(int(edits.Add(1)))
		if err := post(ctx, hc, serve.url()+"/mutate", mb); err != nil {
			return err
		}
		if err := post(ctx, hc, serve.url()+"/validate", vb); err != nil {
			return err
		}
	}
	hc.CloseIdleConnections()
	warm, _ := serve.memory()
	rss, waited := settleRSS(ctx, serve, 5*time.Second, 60*time.Second)
	fig.idle2500 = rss
	fp.add(fmt.Sprintf("resident memory with %d SSO roles cached, right after warm-up", idleRoles), mib(warm))
	fp.add(fmt.Sprintf("resident memory with %d SSO roles cached, settled (after %s)", idleRoles, waited.Round(time.Second)), mib(rss))
	fp.add("  of which (smaps_rollup): anonymous, file-backed (the binary's text and data)", rssSplit(serve))
	fp.add("  Go runtime (its /metrics): heap in use, heap idle not yet returned, stacks, runtime total", goMemory(serve))
	say("idle RSS with %d SSO roles cached: %s (settled after %s)", idleRoles, mib(rss), waited.Round(time.Second))
	if heapProfile != "" {
		if err := saveHeapProfile("http://127.0.0.1:6065/debug/pprof/heap", heapProfile); err != nil {
			say("the idle heap profile was not saved: %v", err)
		} else {
			say("idle heap profile: go tool pprof -sample_index=inuse_space %s", heapProfile)
		}
	}
	return nil
}

// heapProfile, when set (-heap-profile), is where the idle serve's heap
// profile is written.
var heapProfile string

func saveHeapProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// rssSplit reads the anonymous and file-backed parts of the process's RSS.
func rssSplit(p *proc) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.cmd.Process.Pid))
	if err != nil {
		return "?"
	}
	v := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			v[strings.TrimSuffix(f[0], ":")] = n << 10
		}
	}
	return fmt.Sprintf("%s anonymous, %s file-backed", mib(v["Anonymous"]), mib(v["Rss"]-v["Anonymous"]))
}

// goMemory reads the Go runtime's memory gauges from the process's
// /metrics (the Prometheus Go collector controller-runtime registers).
func goMemory(p *proc) string {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	v := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.HasPrefix(f[0], "go_memstats_") {
			n, _ := strconv.ParseFloat(f[1], 64)
			v[f[0]] = int64(n)
		}
	}
	return fmt.Sprintf("%s heap in use, %s heap idle not returned, %s stacks, %s obtained from the OS in all",
		mib(v["go_memstats_heap_inuse_bytes"]), mib(v["go_memstats_heap_idle_bytes"]-v["go_memstats_heap_released_bytes"]),
		mib(v["go_memstats_stack_inuse_bytes"]), mib(v["go_memstats_sys_bytes"]))
}

// settleRSS waits until the process's RSS has not moved by more than
// 256 KiB for quiet (the collector and the scavenger done), at most limit.
func settleRSS(ctx context.Context, p *proc, quiet, limit time.Duration) (int64, time.Duration) {
	start := time.Now()
	lo, hi := int64(-1), int64(0)
	since := start
	for time.Since(start) < limit && ctx.Err() == nil {
		rss, _ := p.memory()
		if lo < 0 || rss < lo {
			lo = rss
		}
		hi = max(hi, rss)
		if hi-lo > 256<<10 {
			lo, hi, since = rss, rss, time.Now()
		}
		if time.Since(since) >= quiet {
			return rss, time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	rss, _ := p.memory()
	return rss, time.Since(start)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// table is the table: every figure next to the floor measured in
// the same run, with its target.
func (f *figures) table(srv *servers) *table {
	t := &table{title: fmt.Sprintf("Summary: the figures of issue 11 against their targets (%d rounds of %s per 100-entry run, twice that per ~1 MiB run, floor and ours alternating; latency of every /mutate and /validate request together; %s; serve under the chart's memory limit: %s; load average %s at the start of the load phase, %s at its end)",
		f.rounds, f.duration, srv.pinText(), srv.how, f.loadAvgStart, loadAvg()),
		head: []string{"figure", "floor (no-op)", "aws-auth-webhook", "ours / floor", "target", "met"}}
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	lat := func(name, key string, pct float64, target string, ok func(o, b time.Duration) bool) {
		if len(f.ours[key]) == 0 || len(f.floor[key]) == 0 {
			t.add(name, "-", "not measured", "-", target, "NO")
			return
		}
		o, b := merge(f.ours[key]).both().Pct(pct), merge(f.floor[key]).both().Pct(pct)
		t.add(name, ms(b), ms(o), ratio(o, b), target, met(ok(o, b)))
	}
	within3 := func(o, b time.Duration) bool { return b > 0 && o <= 3*b }
	cpu := func(name, key, target string, ok func(o time.Duration) bool) {
		if len(f.ours[key]) == 0 || len(f.floor[key]) == 0 {
			t.add(name, "-", "not measured", "-", target, "NO")
			return
		}
		o, b := merge(f.ours[key]).cpuPerRequest(), merge(f.floor[key]).cpuPerRequest()
		m := "-"
		if ok != nil {
			m = met(ok(o))
		}
		t.add(name, msPrec(b), msPrec(o), ratio(o, b), target, m)
	}
	lat("100-entry edit, concurrency 16, p50", "e100/16", 50, "≤ 3× the floor", within3)
	lat("100-entry edit, concurrency 16, p99", "e100/16", 99, "≤ 3× the floor", within3)
	cpu("server CPU per 100-entry request (utime+stime from /proc, concurrency 16)", "e100/16", "≤ 2 ms", func(o time.Duration) bool { return o <= 2*time.Millisecond })
	lat("100-entry edit, concurrency 1, p50", "e100/1", 50, "≤ 3× the floor", within3)
	lat("1 MiB aws-auth, concurrency 4, p99", "e1m/4", 99, "≤ 1 s", func(o, _ time.Duration) bool { return o <= time.Second })
	cpu("server CPU per 1 MiB request (concurrency 4)", "e1m/4", "(reported)", nil)
	peak := "not measured"
	if f.peakChart > 0 {
		peak = mib(f.peakChart)
	}
	if f.oursDied != "" {
		peak += "; " + f.oursDied
	}
	t.add("peak RSS (VmHWM, sampled) through the 1 MiB load (concurrency 1, 4, 16), under the chart's limit ("+f.chartLimit+")", "-", peak, "-", "≤ 128 MiB",
		met(f.oursDied == "" && f.peakChart > 0 && f.peakChart <= chartMemoryLimit))
	if f.cgroupPeak > 0 {
		t.add("  the cgroup's own peak charge (RSS + page cache + kernel), same load", "-", mib(f.cgroupPeak), "-", "(reported)", "-")
	}
	t.add("peak RSS through the 1 MiB load, without a limit ("+f.noLimit+")", "-", mib(f.peakNoLimit), "-", "(reported)", "-")
	t.add(fmt.Sprintf("idle RSS with %d SSO roles cached (floor: the no-op's idle RSS)", idleRoles), mib(f.floorIdle), mib(f.idle2500), "-", "≤ 40 MiB",
		met(f.idle2500 > 0 && f.idle2500 <= 40<<20))
	return t
}

// msPrec is a duration in milliseconds with two decimals, for CPU time.
func msPrec(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
