package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accesssync"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/eksaccess"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/manifest"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/server"
)

// exitPending is plan's exit status when changes are pending.
const exitPending = 3

func newAccessEntriesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access-entries",
		Short: "Reconcile the cluster's EKS access entries with aws-auth (plan, apply)",
		Long: `access-entries turns the same aws-auth document into EKS access entries:

  rolearn / permissionset  a STANDARD entry for the role's real ARN, WITH its
                           IAM path (IAM is asked for it)
  userarn                  a STANDARD entry for the user's ARN as written
  groups                   kubernetesGroups; system:masters becomes the
                           AmazonEKSClusterAdminPolicy at cluster scope
  accessPolicies           access policy associations (namespaces, or the
                           cluster when none are listed)
  the node-role entry      an EC2_LINUX entry (EC2_WINDOWS for the Windows
                           shape, FARGATE_LINUX for the Fargate one)

Entries it cannot translate (other system: groups, reserved usernames,
mapAccounts, ...) are reported with the reason and the fix, never sent to
EKS. Every entry it creates is tagged ` + accessentries.ManagedTag + `=` + accessentries.ManagedTagValue + `;
an entry without that tag is never changed or deleted (--adopt takes over
the ones aws-auth asks for).`,
	}
	cmd.AddCommand(newAccessEntriesSubcommand(false), newAccessEntriesSubcommand(true))
	return cmd
}

func newAccessEntriesSubcommand(apply bool) *cobra.Command {
	var (
		file, cluster, output, region string
		nodeRoles                     []string
		adopt                         bool
		timeout                       time.Duration
	)
	use, short, long := "plan", "Print what would change in the cluster's access entries, and why",
		`plan reads the cluster's access entries and their policies and prints, per
principal, what it would create, update, recreate or delete, and why; the
aws-auth entries it cannot translate; and the entries it leaves alone.

Exit status: 0 nothing to do, 3 changes pending, 1 the document has errors
or entries that cannot be translated, 2 bad invocation or an AWS error — so
it can gate a CI pipeline.`
	if apply {
		use, short, long = "apply", "Make the cluster's access entries match aws-auth",
			`apply does what plan prints, in an order that never leaves a principal
without access: an entry that replaces another (a permission set's new
role) is created, with its policies, before the old one is deleted. It
stops at the first failure. A second apply makes no write call.

Exit status: 0 done (or nothing to do), 1 the document has errors or
entries that cannot be translated (the others are applied), 2 bad
invocation or an AWS error (what was done before it is printed).`
	}
	cmd := &cobra.Command{
		Use:   use + " -f FILE --cluster NAME",
		Short: short,
		Long: long + `

AWS access uses the SDK's default credential chain and honours
AWS_ENDPOINT_URL_EKS, AWS_ENDPOINT_URL_IAM and AWS_ENDPOINT_URL_STS.`,
		Example: "  kubectl get configmap aws-auth -n kube-system -o yaml | aws-auth-webhook access-entries " + use + " -f - --cluster prod",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageErrorf("-o must be text or json, not %q", output)
			}
			if cluster == "" {
				return usageErrorf("--cluster is required: the EKS cluster's name")
			}
			raw, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			cm, err := manifest.Parse(raw)
			if err != nil {
				return usageErrorf("%v", err)
			}
			stderr, stdout := cmd.ErrOrStderr(), cmd.OutOrStdout()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cfg, err := awsidentity.LoadAWSConfig(ctx, region)
			if err != nil {
				return usageErrorf("loading AWS configuration: %v", err)
			}
			resolver := awsidentity.New(cfg, awsidentity.Options{})
			nodeARNs, err := resolver.NodeRoleARNs(ctx, nodeRoles)
			if err != nil {
				if len(nodeRoles) > 0 {
					return usageErrorf("%v", err)
				}
				_, _ = fmt.Fprintf(stderr, "note: the node role is unknown, so only node entries written in aws-auth are translated: %v\n", err)
			}
			res, err := awsauth.Render(ctx, cm.Data, resolver, awsauth.Options{NodeRoleARNs: nodeARNs, ExtraBytes: cm.BinaryDataBytes})
			if err != nil {
				var le *awsauth.LookupError
				if errors.As(err, &le) {
					return &exitError{code: exitUsage, err: err}
				}
				return usageErrorf("%v", err)
			}
			_ = printFindings(stderr, "text", res.Findings)
			if res.Findings.HasErrors() {
				return errRejected
			}

			client := eksaccess.New(eks.NewFromConfig(cfg), cluster, eksaccess.Options{})
			opts := accessentries.Options{Adopt: adopt}
			var pass *eksaccess.Pass
			if apply {
				pass, err = client.Sync(ctx, res, resolver, opts)
			} else {
				pass, err = client.Plan(ctx, res, resolver, opts)
			}
			if pass == nil {
				return &exitError{code: exitUsage, err: err}
			}
			if pass.Plan == nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("the authentication mode of cluster %s is CONFIG_MAP: access entries are off and aws-auth is all the cluster reads. "+
					"Switch to API_AND_CONFIG_MAP first (aws eks update-cluster-config --name %s --access-config authenticationMode=API_AND_CONFIG_MAP); aws-auth keeps working while you migrate", cluster, cluster)}
			}
			if perr := printPass(stdout, output, cluster, pass, apply); perr != nil {
				return perr
			}
			switch {
			case err != nil:
				return &exitError{code: exitUsage, err: err}
			case len(pass.Plan.Untranslatable) > 0:
				return &exitError{code: exitRejected, err: fmt.Errorf("%d aws-auth entr%s cannot be translated into access entries (listed above)",
					len(pass.Plan.Untranslatable), plural(len(pass.Plan.Untranslatable), "y", "ies"))}
			case !apply && len(pass.Plan.Ops) > 0:
				return &exitError{code: exitPending, err: fmt.Errorf("%d change%s pending", len(pass.Plan.Ops), plural(len(pass.Plan.Ops), "", "s"))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "aws-auth ConfigMap manifest (- for stdin)")
	f.StringVar(&cluster, "cluster", "", "name of the EKS cluster (required)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&adopt, "adopt", false, "take over existing entries that aws-auth asks for but that aws-auth-webhook did not create (they are tagged, then kept in line)")
	f.StringArrayVar(&nodeRoles, "node-role-arn", nil, "node role ARN to keep mapped (repeatable); default: the role from EC2 instance metadata")
	f.StringVar(&region, "region", "", "AWS region of the cluster (default: from the environment)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up on AWS after this long")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// passJSON is what -o json prints.
type passJSON struct {
	Cluster            string                         `json:"cluster"`
	AuthenticationMode string                         `json:"authenticationMode"`
	Operations         []accessentries.Op             `json:"operations"`
	Done               []accessentries.Op             `json:"done,omitempty"`
	Untranslatable     []accessentries.Untranslatable `json:"untranslatable"`
	Conflicts          []accessentries.Left           `json:"conflicts"`
	Unmanaged          []accessentries.Left           `json:"unmanaged"`
	Summary            map[string]int                 `json:"summary"`
}

func summary(ops []accessentries.Op) map[string]int {
	out := map[string]int{}
	for _, o := range ops {
		out[string(o.Action)]++
	}
	return out
}

func printPass(w io.Writer, format, cluster string, pass *eksaccess.Pass, applied bool) error {
	p := pass.Plan
	if format == "json" {
		out := passJSON{Cluster: cluster, AuthenticationMode: pass.Mode, Operations: p.Ops, Untranslatable: p.Untranslatable,
			Conflicts: p.Conflicts, Unmanaged: p.Unmanaged, Summary: summary(p.Ops)}
		if applied {
			out.Done = pass.Done
			if out.Done == nil {
				out.Done = []accessentries.Op{}
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	ew := &errWriter{w: w}
	ew.printf("cluster %s, authentication mode %s\n", cluster, pass.Mode)
	if pass.Mode == accessentries.AuthModeAPIAndConfigMap {
		ew.printf("(access entries win over aws-auth for the same principal; aws-auth still serves the others)\n")
	}
	ops := p.Ops
	title := "Changes to make, in this order"
	if applied {
		ops, title = pass.Done, "Done, in this order"
	}
	if len(ops) == 0 {
		ew.printf("\nno changes: the access entries match aws-auth\n")
	} else {
		ew.printf("\n%s:\n", title)
		for _, o := range ops {
			ew.printf("  %s\n", o)
		}
	}
	if applied && len(pass.Done) < len(p.Ops) {
		ew.printf("\nnot done (stopped at the failure below):\n")
		for _, o := range p.Ops[len(pass.Done):] {
			ew.printf("  %s\n", o)
		}
	}
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		ew.printf("\n%s:\n", title)
		for _, l := range lines {
			ew.printf("  %s\n", l)
		}
	}
	var lines []string
	for _, u := range p.Untranslatable {
		lines = append(lines, fmt.Sprintf("%s: %s. Fix: %s", u.Source, u.Reason, u.Fix))
	}
	section("cannot be translated (not sent to EKS)", lines)
	lines = nil
	for _, c := range p.Conflicts {
		lines = append(lines, fmt.Sprintf("%s: %s", c.PrincipalARN, c.Reason))
	}
	section("left alone: entries aws-auth asks for that aws-auth-webhook did not create", lines)
	lines = nil
	for _, u := range p.Unmanaged {
		lines = append(lines, fmt.Sprintf("%s: %s", u.PrincipalARN, u.Reason))
	}
	section("left alone: entries not created here, or whose aws-auth entry cannot be translated", lines)
	counts := summary(ops)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	if len(parts) > 0 {
		ew.printf("\n%s: %s\n", map[bool]string{true: "Applied", false: "Plan"}[applied], strings.Join(parts, ", "))
	}
	return ew.err
}

// errWriter prints until the first write error, and keeps it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// addAccessEntriesServeFlags registers serve's access-entries flags.
func addAccessEntriesServeFlags(f *pflag.FlagSet, opts *server.Options, mode *string) {
	f.StringVar(mode, "access-entries", "off", "EKS access entries: off, plan (report drift: log, Event, metric) or sync (keep them in line with aws-auth)")
	f.StringVar(&opts.AccessEntries.ClusterName, "eks-cluster-name", "", "name of the EKS cluster whose access entries are planned or synced (required unless --access-entries=off)")
	f.BoolVar(&opts.AccessEntries.Adopt, "access-entries-adopt", false, "take over access entries that aws-auth asks for but that aws-auth-webhook did not create")
	f.DurationVar(&opts.AccessEntries.MaxAge, "access-entries-max-age", time.Hour, "how long an access entry read from EKS is trusted before it is read again (an entry is always read again before a write)")
}

// accessEntriesServeOptions checks the access-entries flags.
func accessEntriesServeOptions(opts *server.Options, mode string) error {
	m, err := accesssync.ParseMode(mode)
	if err != nil {
		return usageErrorf("%v", err)
	}
	opts.AccessEntries.Mode = m
	if m != accesssync.ModeOff && opts.AccessEntries.ClusterName == "" {
		return usageErrorf("%v", accesssync.ErrNoCluster)
	}
	return nil
}
