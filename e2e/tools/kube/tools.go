//go:build tools

// Package tools pins the Kubernetes control-plane commands that the e2e tests
// run (kube-apiserver, kube-controller-manager, kubectl). It is never built:
// it only keeps their packages, and so every dependency, in go.mod/go.sum.
// e2e/tools/install.sh builds the binaries from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
