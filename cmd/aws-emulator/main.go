// Command aws-emulator serves the awsemu IAM, STS, EKS and IMDS emulator as its own
// process, for demos and load tests. Once listening it prints "export VAR=value"
// lines on stdout that point the AWS SDK at it, and runs until SIGINT/SIGTERM.
//
//	aws-emulator --permission-set Admin --node-role eks-node >emulator.env &
//	sleep 1 && . ./emulator.env   # AWS_ENDPOINT_URL_IAM=http://127.0.0.1:PORT ...
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var permissionSets, roles, users, clusters stringList
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	account := flag.String("account", "", "account ID (default 111122223333)")
	partition := flag.String("partition", "", "partition: aws, aws-cn, aws-us-gov (default aws)")
	region := flag.String("region", "", "region reported by IMDS and AWS_REGION (default: the partition's first region)")
	ssoRegion := flag.String("sso-region", "", "IAM Identity Center region in SSO role paths (default: --region)")
	nodeRole := flag.String("node-role", "", "role attached to the emulated instance (IMDS); also created in IAM at path /")
	maxPageSize := flag.Int("max-page-size", 0, "if >0, ListRoles pages hold at most this many roles")
	flag.Var(&permissionSets, "permission-set", "permission set NAME with an SSO role (random suffix); repeatable")
	flag.Var(&roles, "role", "plain role NAME at path /; repeatable")
	flag.Var(&users, "user", "IAM user NAME at path /; repeatable")
	flag.Var(&clusters, "eks-cluster", "EKS cluster NAME for the access entry API; repeatable")
	authMode := flag.String("authentication-mode", "API_AND_CONFIG_MAP", "authentication mode of the EKS clusters: CONFIG_MAP, API_AND_CONFIG_MAP or API")
	flag.Parse()

	if *ssoRegion == "" {
		*ssoRegion = *region
	}
	cfg := awsemu.Config{
		Partition:    *partition,
		AccountID:    *account,
		Region:       *region,
		NodeRoleName: *nodeRole,
		MaxPageSize:  *maxPageSize,
	}
	for _, ps := range permissionSets {
		cfg.Roles = append(cfg.Roles, awsemu.SSORole(ps, awsemu.RandomSuffix(), *ssoRegion))
	}
	// On a real account the node role exists in IAM too.
	if *nodeRole != "" && !slices.Contains(roles, *nodeRole) {
		roles = append(roles, *nodeRole)
	}
	for _, name := range roles {
		cfg.Roles = append(cfg.Roles, awsemu.Role{Name: name})
	}

	for _, name := range users {
		cfg.Users = append(cfg.Users, awsemu.User{Name: name})
	}
	for _, name := range clusters {
		cfg.EKSClusters = append(cfg.EKSClusters, awsemu.EKSCluster{Name: name, AuthenticationMode: *authMode})
	}
	srv := awsemu.New(cfg)
	if err := srv.StartOn(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "aws-emulator:", err)
		os.Exit(1)
	}
	defer srv.Close()

	env := srv.Env()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Printf("export %s=%s\n", k, shellQuote(env[k]))
	}
	fmt.Fprintf(os.Stderr, "aws-emulator: IAM, STS, EKS and IMDS at %s, admin API at %s/_emulator/\n", srv.URL(), srv.URL())
	for _, c := range cfg.EKSClusters {
		fmt.Fprintf(os.Stderr, "aws-emulator: EKS cluster %s (authentication mode %s)\n", c.Name, c.AuthenticationMode)
	}
	for _, r := range cfg.Roles {
		fmt.Fprintf(os.Stderr, "aws-emulator: role %s (path %s)\n", r.Name, cmp.Or(r.Path, "/"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shellQuote leaves plain values bare, so that make can read the lines too.
func shellQuote(v string) string {
	if shellSafe.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
