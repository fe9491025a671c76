// Command bench measures aws-auth-webhook and prints the figures as
// tables (`make bench`):
//
//   - the engine: Go benchmarks of pkg/awsauth (parse, rewrite, validate)
//     for documents of 10 to ~6,000 entries;
//   - admission over TLS: `aws-auth-webhook serve` as a real process, on
//     loopback, against a real kube-apiserver + etcd and the in-process AWS
//     emulator, loaded by concurrent editors each sending an edit to
//     /mutate and what it became to /validate, as the apiserver does; next
//     to it, with the same generator and requests, a no-op controller-
//     runtime webhook (the baseline), and our p50 and p99 as ratios to it;
//   - the AWS call budget, counted by the emulator: cold start, admissions
//     with a warm cache, resync passes, 50 admissions missing the cache at
//     once, for 10, 300 and 3,000 SSO roles;
//   - EKS calls per access-entries pass over 500 mapped principals: first
//     sync, warm, after one edit (accessentries.go);
//   - footprint: resident memory idle and under load, time to ready;
//   - hostile shapes: ~1 MiB aws-auth documents of odd shapes, each sent to
//     /mutate and /validate (hostile_phase.go);
//   - first, a summary: the figures of issue 11 (latency and server CPU
//     per request next to the floor, peak RSS under the chart's 128Mi limit
//     and without one, idle RSS with 2,500 SSO roles cached) with their
//     targets.
//
// serve runs under the chart's memory limit in a real cgroup when it can
// (root), and the load generator is pinned to one CPU (limits.go); the
// report says which.
//
// Usage (from the repository root, after make build):
//
//	KUBEBUILDER_ASSETS=$(e2e/tools/install.sh all) go run ./e2e/bench [--duration 5s] [--rounds 2]
//
// `bench noop --port N --cert-dir DIR` is the baseline server itself;
// `bench exec [--cgroup DIR] [--cpus LIST] -- BIN ARGS` starts a server in
// a cgroup and on every CPU.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

type config struct {
	bin      string
	assets   string
	duration time.Duration
	rounds   int
	engine   bool
	load     bool
	budget   bool
	out      string
	cgroup   bool
	// only, when set, runs just these load runs (scenario keys such as
	// e1m/4) and nothing after them: to reproduce or profile one figure.
	only map[string]bool
	// keep keeps the work folder (every server's log) instead of
	// removing it.
	keep bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		err := execWrapped(os.Args[2:]) // returns only on failure
		fmt.Fprintln(os.Stderr, "bench exec:", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		fs := flag.NewFlagSet("noop", flag.ExitOnError)
		port := fs.Int("port", 9443, "HTTPS port")
		certDir := fs.String("cert-dir", "", "folder with tls.crt and tls.key")
		_ = fs.Parse(os.Args[2:])
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := runNoop(ctx, *port, *certDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	var c config
	flag.StringVar(&c.bin, "bin", "bin/aws-auth-webhook", "the aws-auth-webhook binary (make build)")
	flag.StringVar(&c.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "folder with kube-apiserver and etcd (e2e/tools/install.sh all)")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "how long each load run lasts")
	flag.IntVar(&c.rounds, "rounds", 2, "how many times each load run is repeated (baseline and ours alternate)")
	flag.BoolVar(&c.engine, "engine", true, "run the engine benchmarks (go test -bench ./pkg/awsauth/)")
	flag.BoolVar(&c.load, "load", true, "run the admission load and footprint measurements")
	flag.BoolVar(&c.budget, "budget", true, "run the AWS call budget measurements")
	flag.StringVar(&c.out, "o", "", "also write the report to this file")
	flag.BoolVar(&c.cgroup, "cgroup", true, "run serve under the chart's 128Mi limit in a real cgroup (needs root); false, or when none can be made: with GOMEMLIMIT=89MiB, what serve sets itself under that limit")
	only := flag.String("only", "", "run only these load runs, comma-separated (e100/1,e100/16,e100/64,e1m/1,e1m/4,e1m/16; idle: the idle footprint), and no other phase")
	flag.StringVar(&heapProfile, "heap-profile", "", "write the heap profile of serve idle with 2,500 SSO roles to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the work folder with every server's log (its path is printed)")
	flag.Parse()
	if *only != "" {
		c.only = map[string]bool{}
		for _, k := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(k)] = true
		}
	}

	ctrllog.SetLogger(logr.Discard()) // envtest's chatter
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	rep := &report{}
	err := run(ctx, c, rep)
	text := rep.String()
	fmt.Print(text)
	if c.out != "" {
		_ = os.WriteFile(c.out, []byte(text), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, rep *report) error {
	rep.machine(c)
	if c.engine {
		if err := engineBenchmarks(ctx, rep); err != nil {
			return err
		}
	}
	if !c.load && !c.budget {
		return nil
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (run make build)", c.bin, err)
	}
	if c.assets == "" {
		return fmt.Errorf("serve needs a kube-apiserver: set KUBEBUILDER_ASSETS=$(e2e/tools/install.sh all) or --assets")
	}
	work, err := os.MkdirTemp("", "aws-auth-webhook-bench-")
	if err != nil {
		return err
	}
	if c.keep {
		say("the work folder (server logs) is kept: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	cp, err := startControlPlane(c.assets, work)
	if err != nil {
		return err
	}
	defer cp.stop()
	if c.load {
		say("admission load: serve and the no-op floor side by side (about %s)", 2*time.Duration(c.rounds)*(3*c.duration+3*2*c.duration)+3*2*c.duration+90*time.Second)
		if err := admissionLoad(ctx, c, cp, bin, work, rep); err != nil {
			return err
		}
	}
	if c.budget {
		say("AWS call budget: 10, 300 and 3,000 SSO roles")
		if err := callBudget(ctx, cp, bin, work, rep); err != nil {
			return err
		}
		if err := accessEntriesBudget(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

// engineBenchmarks runs the engine's Go benchmarks and tabulates them.
func engineBenchmarks(ctx context.Context, rep *report) error {
	say("engine benchmarks: go test -bench ./pkg/awsauth/ (a minute or two)")
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", "2s", "./pkg/awsauth/")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("engine benchmarks: %w\n%s", err, out)
	}
	t := &table{title: "Engine (pkg/awsauth, go test -bench): one call on one core",
		head: []string{"benchmark", "entries", "ms/op", "MiB/op", "allocs/op"}}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, entries, _ := strings.Cut(strings.TrimPrefix(f[0], "Benchmark"), "/entries=")
		entries = strings.TrimSuffix(entries, fmt.Sprintf("-%d", runtime.GOMAXPROCS(0)))
		var ns, b, allocs float64
		for i := 2; i+1 < len(f); i += 2 {
			var v float64
			if _, err := fmt.Sscan(f[i], &v); err != nil {
				continue // not a figure
			}
			switch f[i+1] {
			case "ns/op":
				ns = v
			case "B/op":
				b = v
			case "allocs/op":
				allocs = v
			}
		}
		t.add(name, entries, fmt.Sprintf("%.2f", ns/1e6), fmt.Sprintf("%.1f", b/(1<<20)), fmt.Sprintf("%.0f", allocs))
	}
	rep.tables = append(rep.tables, t)
	return nil
}
