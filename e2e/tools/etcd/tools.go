//go:build tools

// Package tools pins etcd for the e2e tests. It is never built: it only keeps
// etcd's server (package main at the module root) and its dependencies in
// go.mod/go.sum. e2e/tools/install.sh builds the binary from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
