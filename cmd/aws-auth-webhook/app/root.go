// Package app holds the aws-auth-webhook command line: flags and wiring
// only; the work is done in pkg/.
package app

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0
	exitRejected = 1 // the document has errors
	exitUsage    = 2 // bad flags or input, or AWS could not be reached
)

// exitError carries an exit code up to Execute.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// errRejected means the findings were already printed.
var errRejected = &exitError{code: exitRejected, err: errors.New("rejected")}

// version is set at build time with -ldflags "-X ...app.version=...".
var version = "dev"

// Execute runs the command line and returns the process exit code.
func Execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee != errRejected {
			fmt.Fprintln(stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return exitUsage
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "aws-auth-webhook",
		Short: "Guard and complete the EKS aws-auth ConfigMap",
		Long: `aws-auth-webhook keeps kube-system/aws-auth safe and simple.

It resolves "permissionset: NAME" entries to the IAM Identity Center (SSO)
role ARN, path stripped, and keeps it current when the role's suffix changes;
replaces $ACCOUNTID with the cluster's account; strips IAM paths from role
ARNs; makes sure the node role is mapped; and rejects what the EKS
authenticator would silently drop: malformed YAML, duplicate ARNs, broken
groups, unknown permission sets.

  render   resolve and validate a ConfigMap manifest, print the result
  lint     validate a ConfigMap manifest without any AWS call
  serve    run the admission webhook and the resync loop
  access-entries plan|apply
           reconcile the cluster's EKS access entries with aws-auth`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	root.AddCommand(newServeCommand(), newRenderCommand(), newLintCommand(), newAccessEntriesCommand())
	return root
}

// readInput reads the -f argument: a file, or stdin for "-".
func readInput(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "" {
		return nil, usageErrorf("-f is required: a ConfigMap manifest file, or - for stdin (kubectl get configmap aws-auth -n kube-system -o yaml | %s -f -)", cmd.CommandPath())
	}
	if name == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return b, nil
}
