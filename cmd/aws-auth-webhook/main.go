// Command aws-auth-webhook guards and completes the EKS kube-system/aws-auth
// ConfigMap: an admission webhook (serve) and offline tools (render, lint).
package main

import (
	"os"

	"github.com/aws-auth-webhook/aws-auth-webhook/cmd/aws-auth-webhook/app"
)

func main() {
	os.Exit(app.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
