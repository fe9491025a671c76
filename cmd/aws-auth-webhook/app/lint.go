package app

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/manifest"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/textcap"
)

func newLintCommand() *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "lint -f FILE [-o text|json]",
		Short: "Validate an aws-auth ConfigMap manifest without calling AWS",
		Long: `lint checks an aws-auth ConfigMap manifest the way the EKS authenticator
will read it, with no AWS call: for CI pipelines and pre-commit hooks.

Permission sets and $ACCOUNTID are accepted as written (render resolves them).
Exit status: 0 when there are no errors (warnings allowed), 1 when there are,
2 when the input cannot be read.`,
		Example: `  aws-auth-webhook lint -f aws-auth.yaml
  kubectl get configmap aws-auth -n kube-system -o yaml | aws-auth-webhook lint -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageErrorf("-o must be text or json, not %q", output)
			}
			raw, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			cm, err := manifest.Parse(raw)
			if err != nil {
				return usageErrorf("%v", err)
			}
			res := awsauth.LintWithOptions(cm.Data, awsauth.Options{ExtraBytes: cm.BinaryDataBytes})
			findings := manifestFindings(cm, res.Findings)
			if err := printFindings(cmd.OutOrStdout(), output, findings); err != nil {
				return err
			}
			if findings.HasErrors() {
				return errRejected
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "ConfigMap manifest to check (- for stdin)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// manifestFindings adds to the engine's findings those about the manifest
// itself (a name that only looks like aws-auth), and the line of the file
// each one is on, where a data value's lines are the file's (a '|' block).
func manifestFindings(cm *manifest.ConfigMap, fs awsauth.Findings) awsauth.Findings {
	out := append(awsauth.CheckObjectName(cm.Namespace, cm.Name), fs...)
	for i, f := range out {
		if line, ok := cm.LineOf(f.Key, f.Line); ok {
			out[i].FileLine = line
		}
	}
	return out
}

// printFindings writes findings as text lines or as a JSON array. Text
// shows the first awsauth.MaxListedFindings of each severity, each line cut
// to awsauth.MaxFindingBytes, then how many more there are; JSON holds
// them all.
func printFindings(w io.Writer, format string, findings awsauth.Findings) error {
	if format == "json" {
		if findings == nil {
			findings = awsauth.Findings{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(findings)
	}
	shown := map[awsauth.Severity]int{}
	for _, f := range findings {
		if shown[f.Severity] < awsauth.MaxListedFindings {
			fmt.Fprintf(w, "%s: %s\n", f.Severity, textcap.Clip(f.String(), awsauth.MaxFindingBytes))
		}
		shown[f.Severity]++
	}
	for _, sev := range []awsauth.Severity{awsauth.SeverityError, awsauth.SeverityWarning} {
		if more := awsauth.More(shown[sev]-awsauth.MaxListedFindings, string(sev)); more != "" {
			fmt.Fprintf(w, "%s: %s\n", sev, more)
		}
	}
	return nil
}
