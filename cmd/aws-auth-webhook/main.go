// Command aws-auth-webhook guards and completes the EKS kube-system/aws-auth
// ConfigMap: an admission webhook (serve) and offline tools (render, lint).
package main

import (
	"os"
	"runtime"

	"github.com/aws-auth-webhook/aws-auth-webhook/cmd/aws-auth-webhook/app"
)

func main() {
	// No heap-profile sampling unless serve --pprof-bind-address asks for
	// it: each sample unwinds its stack and keeps it in the profile's hash
	// table, ~0.9 MiB of the idle RSS measured by make bench.
	runtime.MemProfileRate = 0
	os.Exit(app.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
