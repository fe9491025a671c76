//go:build e2e

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// The demo's access-entries step: the emulated account has an EKS cluster
// in API_AND_CONFIG_MAP mode and the webhook runs with
// --access-entries=sync, so every permission set written in aws-auth also
// gets an access entry (with the SSO path in its ARN), and a recreated
// role's entry is repaired.

const demoCluster = "demo"

// withAccessEntries adds the EKS cluster, and the node role in IAM (EKS
// checks every principal against IAM).
func withAccessEntries(cfg awsemu.Config) awsemu.Config {
	cfg.EKSClusters = append(cfg.EKSClusters, awsemu.EKSCluster{Name: demoCluster, AuthenticationMode: awsemu.AuthModeAPIAndConfigMap})
	if cfg.NodeRoleName != "" {
		cfg.Roles = append(cfg.Roles, awsemu.Role{Name: cfg.NodeRoleName})
	}
	return cfg
}

// accessEntriesArgs are the serve flags of the step.
func accessEntriesArgs() []string {
	return []string{"--access-entries=sync", "--eks-cluster-name=" + demoCluster}
}

// accessEntriesInstructions is what the demo prints for the step.
func accessEntriesInstructions(emu *awsemu.Server, binary string) string {
	env := emu.Env()
	keys := slices.Sorted(maps.Keys(env))
	var vars []string
	for _, k := range keys {
		vars = append(vars, k+"="+env[k])
	}
	return fmt.Sprintf(`
  # EKS access entries follow aws-auth (--access-entries=sync, cluster %[2]q):
  # each permission set gets an entry for its role's ARN WITH the SSO path,
  # system:masters becomes AmazonEKSClusterAdminPolicy:
  curl -s %[1]s/_emulator/eks/%[2]s/access-entries; echo

  # recreate the role of a permission set under the same name: its entry
  # goes stale ("stale": true) and is repaired within 10s (an Event says so):
  curl -s %[1]s/_emulator/roles | grep -o 'AWSReservedSSO_Developer_[0-9a-f]*' | head -1 | \
    xargs -I{} curl -s -X POST '%[1]s/_emulator/roles/recreate?name={}'

  # the same plan from the command line, a CI gate (exit 0 nothing to do,
  # 3 changes pending, 1 mapping errors, 2 AWS or usage errors):
  kubectl get configmap aws-auth -n kube-system -o yaml | \
    env %[3]s \
    %[4]s access-entries plan -f - --cluster %[2]s
`, emu.URL(), demoCluster, strings.Join(vars, " "), binary)
}

// checkAccessEntries is the --check of the step: the Developer permission
// set that the smoke check added gets its access entry, and after its role
// is recreated the entry is repaired.
func checkAccessEntries(ctx context.Context, emu *awsemu.Server) error {
	find := func() (awsemu.AccessEntry, bool) {
		entries, _ := emu.AccessEntries(demoCluster)
		for _, e := range entries {
			if strings.Contains(e.PrincipalARN, ":role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Developer_") {
				return e, true
			}
		}
		return awsemu.AccessEntry{}, false
	}
	var entry awsemu.AccessEntry
	if err := waitFor(ctx, 30*time.Second, func() bool { e, ok := find(); entry = e; return ok }); err != nil {
		entries, _ := emu.AccessEntries(demoCluster)
		return fmt.Errorf("no access entry appeared for permission set Developer; the cluster has %+v", entries)
	}
	fmt.Printf("demo check passed: the access entry for permission set Developer is %s (%s, username %s)\n", entry.PrincipalARN, entry.Type, entry.Username)
	role := entry.PrincipalARN[strings.LastIndexByte(entry.PrincipalARN, '/')+1:]
	if _, err := emu.RecreateRole(role); err != nil {
		return err
	}
	if _, err := emu.Authenticate(demoCluster, entry.PrincipalARN); err == nil {
		return errors.New("the entry should be stale once its role is recreated")
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { _, err := emu.Authenticate(demoCluster, entry.PrincipalARN); return err == nil }); err != nil {
		return fmt.Errorf("the access entry of the recreated role %s was not repaired", role)
	}
	fmt.Printf("demo check passed: role %s was recreated, its access entry went stale and was repaired\n", role)
	return nil
}
