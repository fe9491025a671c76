package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/manifest"
)

func newRenderCommand() *cobra.Command {
	var (
		file      string
		nodeRoles []string
		region    string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "render -f FILE [--node-role-arn ARN]...",
		Short: "Resolve and validate an aws-auth ConfigMap manifest, print the result",
		Long: `render does offline what the webhook does on every write of aws-auth:

  permissionset: NAME   adds rolearn: with the SSO role's ARN, found through
                        IAM ListRoles, without its path (permissionset stays)
  $ACCOUNTID            in rolearn/userarn becomes the account from STS
  role ARN with a path  the path is stripped (the authenticator never
                        matches a pathed ARN)
  node role             added unless mapped: from --node-role-arn, else
                        from EC2 instance metadata

Everything else is printed exactly as written. The rewritten manifest goes
to stdout, warnings to stderr. Exit status: 0 valid, 1 rejected (findings on
stderr, nothing on stdout), 2 bad input or AWS unreachable.

AWS access uses the SDK's default credential chain and honours
AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL_STS and AWS_EC2_METADATA_SERVICE_ENDPOINT.
It needs iam:ListRoles and sts:GetCallerIdentity.`,
		Example: `  aws-auth-webhook render -f aws-auth.yaml > rendered.yaml
  kubectl get configmap aws-auth -n kube-system -o yaml \
    | aws-auth-webhook render -f - --node-role-arn arn:aws:iam::111122223333:role/eks-node`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			cm, err := manifest.Parse(raw)
			if err != nil {
				return usageErrorf("%v", err)
			}
			for _, a := range nodeRoles {
				if _, err := awsidentity.CanonicalNodeRole(a); err != nil {
					return usageErrorf("%v", err)
				}
			}
			stderr := cmd.ErrOrStderr()
			if cm.Name != "aws-auth" || cm.Namespace != "" && cm.Namespace != "kube-system" {
				fmt.Fprintf(stderr, "note: this is ConfigMap %s/%s; the authenticator reads kube-system/aws-auth\n", cm.Namespace, cm.Name)
			}

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
				fmt.Fprintf(stderr, "note: the node role is unknown, so no node entry is added: %v\n", err)
			}

			if fs := awsauth.CheckObjectName(cm.Namespace, cm.Name); fs.HasErrors() {
				_ = printFindings(stderr, "text", fs)
				return errRejected
			}
			res, err := awsauth.Render(ctx, cm.Data, resolver, awsauth.Options{NodeRoleARNs: nodeARNs, ExtraBytes: cm.BinaryDataBytes})
			if err != nil {
				var le *awsauth.LookupError
				if errors.As(err, &le) {
					return &exitError{code: exitUsage, err: err}
				}
				return usageErrorf("%v", err)
			}
			findings := manifestFindings(cm, res.Findings)
			_ = printFindings(stderr, "text", findings)
			if findings.HasErrors() {
				return errRejected
			}
			changes := map[string]string{}
			for _, k := range res.Changed {
				changes[k] = res.Data[k]
			}
			out, err := cm.WithData(changes)
			if err != nil {
				return usageErrorf("%v", err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "ConfigMap manifest to render (- for stdin)")
	cmd.Flags().StringArrayVar(&nodeRoles, "node-role-arn", nil, "node role ARN to keep mapped (repeatable, one per node group); default: the role from EC2 instance metadata")
	cmd.Flags().StringVar(&region, "region", "", "AWS region for the STS endpoint (default: from the environment)")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up on AWS after this long")
	return cmd
}
