// Package accessentries turns the aws-auth intent into EKS access entries.
// It is pure: no AWS SDK, no Kubernetes client. Translate applies the
// mapping rules (all of them are in this file) to the mappings the engine
// resolved (pkg/awsauth) and the IAM facts about each role, giving the
// desired entries and the entries that cannot be translated; Diff compares
// the desired entries with the cluster's current ones and gives an ordered
// Plan of operations, each with its reason. pkg/eksaccess reads the
// cluster and executes a Plan through the EKS API.
package accessentries

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	yamlv2 "go.yaml.in/yaml/v2"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// Access entry types (EKS API reference, CreateAccessEntry "type"; user
// guide "Create access entries": EC2_LINUX for Linux or Bottlerocket
// self-managed nodes, EC2_WINDOWS for Windows ones, FARGATE_LINUX for the
// Fargate pod execution role, STANDARD for everything else).
const (
	TypeStandard     = "STANDARD"
	TypeEC2Linux     = "EC2_LINUX"
	TypeEC2Windows   = "EC2_WINDOWS"
	TypeFargateLinux = "FARGATE_LINUX"
)

// IsNodeType reports whether an entry of type t is one whose username and
// groups EKS sets itself (every type but STANDARD).
func IsNodeType(t string) bool { return t != TypeStandard && t != "" }

// RoleFact is what IAM says about a role: its ARN with the path (what EKS
// checks principalArn against) and when it was created.
type RoleFact struct {
	ARN     string
	Created time.Time
}

// RoleFacts maps a role's canonical ARN, lowercased (arn:P:iam::A:role/NAME,
// as awsauth.IdentityKey gives it), to its facts. A role missing from the
// map does not exist in IAM.
type RoleFacts map[string]RoleFact

// Association is an access policy associated with an entry: cluster scope
// when Namespaces is nil.
type Association struct {
	Policy     string   `json:"policy"`               // name, e.g. AmazonEKSViewPolicy
	Namespaces []string `json:"namespaces,omitempty"` // sorted; nil: cluster
}

// Scope describes the association's access scope for people.
func (a Association) Scope() string {
	if a.Namespaces == nil {
		return "cluster"
	}
	return "namespaces " + strings.Join(a.Namespaces, ",")
}

func (a Association) equal(b Association) bool {
	return a.Policy == b.Policy && slices.Equal(a.Namespaces, b.Namespaces) && (a.Namespaces == nil) == (b.Namespaces == nil)
}

// Desired is the access entry an aws-auth entry asks for.
type Desired struct {
	PrincipalARN string        `json:"principalArn"`
	Type         string        `json:"type"`
	Username     string        `json:"username,omitempty"` // "": EKS generates one
	Groups       []string      `json:"kubernetesGroups,omitempty"`
	Policies     []Association `json:"accessPolicies,omitempty"` // sorted by policy
	// Source names the aws-auth entry: mapRoles[2] (permissionset Admin).
	Source string `json:"source"`
	// PermissionSet is set for a permissionset entry.
	PermissionSet string `json:"permissionSet,omitempty"`
	// RoleCreated is the role's IAM CreateDate (zero for users).
	RoleCreated time.Time `json:"-"`
}

// Untranslatable is an aws-auth entry that has no access-entry equivalent.
type Untranslatable struct {
	Source string `json:"source"`
	// PrincipalARN is the principal, when known (for a role IAM does not
	// have, its ARN without path): its existing entry, if any, is left
	// alone rather than deleted.
	PrincipalARN string `json:"principalArn,omitempty"`
	Reason       string `json:"reason"`
	Fix          string `json:"fix"`
}

// Reserved prefixes. "If you specify your own username: it can't start
// with system:, eks:, aws:, amazon:, or iam:" (EKS user guide, "Create
// access entries" and "Set a custom username for EKS access entries").
// Kubernetes groups starting with system: are refused by the EKS API: "The
// kubernetes group name system:masters is invalid, it cannot start with
// system:" (InvalidParameterException, as reported in
// terraform-aws-modules/terraform-aws-eks#2915 and awsdocs/amazon-eks-user-guide#985).
var (
	ReservedUsernamePrefixes = []string{"system:", "eks:", "aws:", "amazon:", "iam:"}
	ReservedGroupPrefix      = "system:"
)

// Group names that have a meaning in aws-auth and a different form in
// access entries.
const (
	groupMasters       = "system:masters"
	groupBootstrappers = "system:bootstrappers"
	groupNodes         = "system:nodes"
	groupNodeProxier   = "system:node-proxier"
	// "When specifying a custom AMI ID for Windows managed node groups, add
	// eks:kube-proxy-windows to your AWS IAM Authenticator configuration
	// map" (EKS user guide, "Deploy Windows nodes on EKS clusters").
	groupKubeProxyWindows = "eks:kube-proxy-windows"
)

// Node usernames: what EKS sets for node entries (user guide, "Create
// access entries", the table of generated usernames).
const (
	usernameEC2Node     = "system:node:{{EC2PrivateDNSName}}"
	usernameFargateNode = "system:node:{{SessionName}}"
)

// nodeShapes are the aws-auth entries of nodes and the access entry type
// each becomes. EKS grants node entries what they need itself: such an
// entry carries no groups, username or access policies.
var nodeShapes = []struct {
	groups   []string // sorted
	username string
	typ      string
}{
	{[]string{groupBootstrappers, groupNodes}, usernameEC2Node, TypeEC2Linux},
	{[]string{groupKubeProxyWindows, groupBootstrappers, groupNodes}, usernameEC2Node, TypeEC2Windows},
	{[]string{groupBootstrappers, groupNodeProxier, groupNodes}, usernameFargateNode, TypeFargateLinux},
}

// Username templates. Access entries render {{SessionName}} and
// {{SessionNameRaw}} ("If you add either {{SessionName}} or
// {{SessionNameRaw}} to your username, the username must include a colon
// before {{SessionName}}": user guide, "Create access entries"), and
// {{EC2PrivateDNSName}} / {{SessionName}} only in the usernames EKS sets
// for node entries. {{AccountID}} is the principal's account, known here,
// so it is written out; {{AccessKeyID}} has no equivalent.
const (
	tmplSessionName    = "{{SessionName}}"
	tmplSessionNameRaw = "{{SessionNameRaw}}"
	tmplAccountID      = "{{AccountID}}"
	tmplAccessKeyID    = "{{AccessKeyID}}"
	tmplEC2DNSName     = "{{EC2PrivateDNSName}}"
)

// Translate applies the mapping rules to the mappings of a rendered,
// valid aws-auth (res from awsauth.Render), with the IAM facts of every
// role it maps (see RolesNeeded). mapAccounts is passed as written.
func Translate(res *awsauth.Result, facts RoleFacts) ([]Desired, []Untranslatable) {
	var desired []Desired
	var untranslatable []Untranslatable
	for _, m := range res.Roles {
		d, u := translate(awsauth.KeyMapRoles, m, facts)
		if u != nil {
			untranslatable = append(untranslatable, *u)
			continue
		}
		desired = append(desired, d)
	}
	for _, m := range res.Users {
		d, u := translate(awsauth.KeyMapUsers, m, facts)
		if u != nil {
			untranslatable = append(untranslatable, *u)
			continue
		}
		desired = append(desired, d)
	}
	for i, acct := range accountsOf(res) {
		untranslatable = append(untranslatable, Untranslatable{
			Source: fmt.Sprintf("%s[%d] (%s)", awsauth.KeyMapAccounts, i, acct),
			Reason: "mapAccounts maps every IAM principal of an account; access entries name one principal each, so it has no equivalent",
			Fix:    "add a mapRoles or mapUsers entry for each role or user of that account that needs access",
		})
	}
	return desired, untranslatable
}

// RolesNeeded lists the canonical role ARNs whose IAM facts Translate
// needs, lowercased and sorted.
func RolesNeeded(res *awsauth.Result) []string {
	seen := map[string]bool{}
	for _, m := range res.Roles {
		if k, ok := awsauth.IdentityKey(m.ARN); ok {
			seen[k] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func source(key string, m awsauth.Mapping) string {
	return fmt.Sprintf("%s[%d] (%s)", key, m.Index, m.Label())
}

// translate is the one place where an aws-auth mapping becomes an access
// entry, or is reported as having none.
func translate(key string, m awsauth.Mapping, facts RoleFacts) (Desired, *Untranslatable) {
	d := Desired{Source: source(key, m), PermissionSet: m.PermissionSet, Type: TypeStandard}
	fail := func(principal, reason, fix string) (Desired, *Untranslatable) {
		return Desired{}, &Untranslatable{Source: d.Source, PrincipalARN: principal, Reason: reason, Fix: fix}
	}

	// The principal: a role's real ARN, with its IAM path, as IAM knows it
	// (EKS checks principalArn against IAM and refuses a path-stripped SSO
	// role ARN as "invalid principal"); a user's ARN as written.
	if key == awsauth.KeyMapRoles {
		k, ok := awsauth.IdentityKey(m.ARN)
		if !ok {
			return fail("", fmt.Sprintf("%q is not a role ARN", m.ARN), "fix the rolearn (lint says how)")
		}
		fact, ok := facts[k]
		if !ok {
			// The principal without its path: an entry for this role under
			// any path is left alone, not deleted.
			return fail(m.ARN, fmt.Sprintf("the role %s does not exist in IAM, so EKS would refuse it as an invalid principal", m.ARN),
				"create the role, or remove the entry")
		}
		d.PrincipalARN, d.RoleCreated = fact.ARN, fact.Created
	} else {
		d.PrincipalARN = m.ARN
	}
	account := accountOf(d.PrincipalARN)

	groups := slices.Clone(m.Groups)
	sort.Strings(groups)
	groups = slices.Compact(groups)

	// Node entries: EC2_LINUX, EC2_WINDOWS or FARGATE_LINUX, with no
	// groups, no username and no access policy ("If you set the value to
	// EC2_LINUX or EC2_WINDOWS, you can't specify values for
	// kubernetesGroups, or associate an AccessPolicy": API reference).
	for _, shape := range nodeShapes {
		if !slices.Equal(groups, shape.groups) {
			continue
		}
		switch {
		case key == awsauth.KeyMapUsers:
			return fail(d.PrincipalARN, "a node entry must map an IAM role; access entries for nodes take only roles",
				"map the node role in mapRoles")
		case m.Username != shape.username:
			return fail(d.PrincipalARN, fmt.Sprintf("a %s access entry always has the username %s (EKS sets it); this entry's username %q would be lost",
				shape.typ, shape.username, m.Username),
				fmt.Sprintf("write username: %s, as EKS will", shape.username))
		case len(m.AccessPolicies) > 0:
			return fail(d.PrincipalARN, fmt.Sprintf("a %s access entry cannot be associated with access policies", shape.typ),
				"remove accessPolicies from the node entry (EKS grants nodes what they need)")
		}
		d.Type = shape.typ
		return d, nil
	}

	// STANDARD entries.
	for _, g := range groups {
		switch {
		case g == groupMasters:
			// Its equivalent: AmazonEKSClusterAdminPolicy at cluster scope.
			d.Policies = append(d.Policies, Association{Policy: awsauth.ClusterAdminPolicy})
		case strings.HasPrefix(g, ReservedGroupPrefix):
			hint := "bind the permissions to a group without the system: prefix with a (Cluster)RoleBinding, or use accessPolicies"
			if g == groupBootstrappers || g == groupNodes || g == groupNodeProxier || g == groupKubeProxyWindows {
				hint = "a node entry has exactly the groups system:bootstrappers and system:nodes (plus eks:kube-proxy-windows for Windows, or system:node-proxier for Fargate); fix the groups"
			}
			return fail(d.PrincipalARN, fmt.Sprintf("the group %q cannot be a Kubernetes group of an access entry: EKS refuses group names that start with %s", g, ReservedGroupPrefix), hint)
		default:
			d.Groups = append(d.Groups, g)
		}
	}

	username, why, fix := translateUsername(m.Username, account)
	if why != "" {
		return fail(d.PrincipalARN, why, fix)
	}
	d.Username = username

	for _, p := range m.AccessPolicies {
		a := Association{Policy: p.Policy, Namespaces: p.Namespaces}
		if i := slices.IndexFunc(d.Policies, func(x Association) bool { return x.Policy == a.Policy }); i >= 0 {
			// system:masters already grants it at cluster scope, the widest.
			continue
		}
		d.Policies = append(d.Policies, a)
	}
	sort.Slice(d.Policies, func(i, j int) bool { return d.Policies[i].Policy < d.Policies[j].Policy })
	return d, nil
}

// translateUsername keeps a username that access entries accept, writes
// {{AccountID}} out, and reports the rest (why and fix are set then).
func translateUsername(u, account string) (username, why, fix string) {
	if strings.TrimSpace(u) == "" {
		return "", "", "" // EKS generates one from the principal's ARN
	}
	for _, p := range ReservedUsernamePrefixes {
		if strings.HasPrefix(u, p) {
			return "", fmt.Sprintf("the username %q starts with %s, which EKS refuses for access entries (reserved: %s)", u, p, strings.Join(ReservedUsernamePrefixes, ", ")),
				"choose a username without that prefix, e.g. admin:{{SessionName}}"
		}
	}
	switch {
	case strings.Contains(u, tmplEC2DNSName):
		return "", fmt.Sprintf("the username %q uses {{EC2PrivateDNSName}}, which access entries render only in node entries", u),
			"use {{SessionName}} (after a colon), or give the entry the node groups system:bootstrappers and system:nodes"
	case strings.Contains(u, tmplAccessKeyID):
		return "", fmt.Sprintf("the username %q uses {{AccessKeyID}}, which access entries do not render", u),
			"use {{SessionName}} (after a colon) to tell sessions apart"
	}
	if account != "" {
		u = strings.ReplaceAll(u, tmplAccountID, account)
	}
	rest := templatePattern.ReplaceAllStringFunc(u, func(t string) string {
		if t == tmplSessionName || t == tmplSessionNameRaw {
			return ""
		}
		return t
	})
	if m := templatePattern.FindString(rest); m != "" {
		return "", fmt.Sprintf("the username %q uses %s, which access entries do not render", u, m),
			"use {{SessionName}} or {{SessionNameRaw}} (after a colon)"
	}
	for _, t := range []string{tmplSessionName, tmplSessionNameRaw} {
		if i := strings.Index(u, t); i >= 0 && !strings.Contains(u[:i], ":") {
			return "", fmt.Sprintf("the username %q has no colon before %s, which EKS requires", u, t),
				fmt.Sprintf("put a colon before it, e.g. %s:%s", strings.TrimSuffix(u[:i], "-"), t)
		}
	}
	return u, "", ""
}

// accountOf is the account ID in an IAM ARN, or "".
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return parts[4]
}

// accountsOf reads mapAccounts the way the engine validated it.
func accountsOf(res *awsauth.Result) []string {
	text := strings.TrimSpace(res.Data[awsauth.KeyMapAccounts])
	if text == "" {
		return nil
	}
	// As the authenticator reads it (goyaml.v2 into []string); the engine
	// has rejected anything else.
	var accounts []string
	if yamlv2.Unmarshal([]byte(text), &accounts) != nil {
		return nil
	}
	return accounts
}

var templatePattern = regexp.MustCompile(`\{\{[^{}]*\}\}`)
