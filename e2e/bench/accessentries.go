package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/accessentries"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/eksaccess"
)

// aePrincipals is the size of the access-entries scenario: 499 permission
// sets, each with a group and an access policy, plus the node role.
const aePrincipals = 500

// accessEntriesBudget counts, in the emulator, the EKS (and IAM) calls of
// one access-entries pass over aePrincipals mapped principals: the pass
// the server's reconciler runs (eksaccess.Client.Sync with the server's
// one-hour read cache), and the CLI's plan (no cache) for comparison.
func accessEntriesBudget(ctx context.Context, rep *report) error {
	roles := append(ssoRoles(aePrincipals-1), awsemu.Role{Name: "eks-node"})
	emu := awsemu.New(awsemu.Config{AccountID: account, Region: region, Roles: roles,
		EKSClusters: []awsemu.EKSCluster{{Name: "bench", AuthenticationMode: awsemu.AuthModeAPI}}})
	if err := emu.Start(); err != nil {
		return err
	}
	defer emu.Close()
	cfg, err := emu.AWSConfig(ctx)
	if err != nil {
		return err
	}
	res := awsidentity.New(cfg, awsidentity.Options{})
	api := eks.NewFromConfig(cfg)
	server := eksaccess.New(api, "bench", eksaccess.Options{MaxAge: time.Hour})

	doc := aeDocument(aePrincipals-1, "")
	t := &table{title: fmt.Sprintf("EKS calls per access-entries pass (counted by the emulator; %d mapped principals: %d permission sets with a group and a policy, and the node role)", aePrincipals, aePrincipals-1),
		head: []string{"pass", "DescribeCluster", "ListAccessEntries", "DescribeAccessEntry", "ListAssociatedAccessPolicies", "writes", "IAM", "operations", "ms"}}
	run := func(name string, c *eksaccess.Client, data map[string]string, apply bool) error {
		rendered, err := awsauth.Render(ctx, data, res, awsauth.Options{})
		if err != nil {
			return err
		}
		if rendered.Findings.HasErrors() {
			return fmt.Errorf("bench document: %v", rendered.Findings.Errors().Strings())
		}
		emu.ResetCalls()
		start := time.Now()
		var pass *eksaccess.Pass
		if apply {
			pass, err = c.Sync(ctx, rendered, res, accessentries.Options{})
		} else {
			pass, err = c.Plan(ctx, rendered, res, accessentries.Options{})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		elapsed := time.Since(start)
		calls := emu.AllCalls()
		writes, iam := 0, 0
		for k, v := range calls {
			switch {
			case strings.HasPrefix(k, "iam:") || strings.HasPrefix(k, "sts:"):
				iam += v
			case strings.HasPrefix(k, "eks:") && !strings.HasPrefix(k, "eks:List") && !strings.HasPrefix(k, "eks:Describe"):
				writes += v
			}
		}
		ops := summaryOf(pass.Plan.Ops)
		t.add(name, strconv.Itoa(calls["eks:DescribeCluster"]), strconv.Itoa(calls["eks:ListAccessEntries"]), strconv.Itoa(calls["eks:DescribeAccessEntry"]),
			strconv.Itoa(calls["eks:ListAssociatedAccessPolicies"]), strconv.Itoa(writes), strconv.Itoa(iam), ops, strconv.Itoa(int(elapsed.Milliseconds())))
		return nil
	}
	steps := []struct {
		name  string
		c     *eksaccess.Client
		data  map[string]string
		apply bool
	}{
		{"server: first sync (creates everything)", server, doc, true},
		{"server: next pass (reads what it wrote)", server, doc, true},
		{"server: warm pass, nothing to do", server, doc, true},
		{"server: after one edit (a group added to one entry)", server, aeDocument(aePrincipals-1, "oncall"), true},
		{"server: warm pass again", server, aeDocument(aePrincipals-1, "oncall"), true},
		{"CLI: plan, nothing to do (reads every entry)", eksaccess.New(api, "bench", eksaccess.Options{}), aeDocument(aePrincipals-1, "oncall"), false},
	}
	for _, s := range steps {
		if err := run(s.name, s.c, s.data, s.apply); err != nil {
			return err
		}
	}
	rep.tables = append(rep.tables, t)
	return nil
}

func summaryOf(ops []accessentries.Op) string {
	counts := map[string]int{}
	for _, o := range ops {
		counts[string(o.Action)]++
	}
	if len(counts) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// aeDocument maps n permission sets, each with a group and a namespaced
// access policy, and the node role; extraGroup is added to the first
// entry (an edit).
func aeDocument(n int, extraGroup string) map[string]string {
	var b strings.Builder
	b.WriteString("- rolearn: arn:aws:iam::" + account + ":role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n")
	for i := range n {
		groups := fmt.Sprintf("team%04d", i)
		if i == 0 && extraGroup != "" {
			groups += ", " + extraGroup
		}
		fmt.Fprintf(&b, "- permissionset: %s\n  username: \"team%04d:{{SessionName}}\"\n  groups: [%s]\n  accessPolicies:\n    - policy: AmazonEKSEditPolicy\n      namespaces: [team%04d]\n",
			permissionSet(i), i, groups, i)
	}
	return map[string]string{awsauth.KeyMapRoles: b.String()}
}
