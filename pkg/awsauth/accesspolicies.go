package awsauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
)

// accessPolicies is an optional per-entry key that says which EKS access
// policies the principal's access entry gets (pkg/accessentries translates
// aws-auth into access entries):
//
//	accessPolicies:
//	  - policy: AmazonEKSViewPolicy           # cluster scope
//	  - policy: AmazonEKSEditPolicy
//	    namespaces: [team-a, "team-b-*"]      # namespace scope
//
// The authenticator ignores keys it does not know (encoding/json into its
// structs), so the key is safe in aws-auth; the differential test against
// its parser proves it.
const fieldAccessPolicies = "accesspolicies"

// AccessPolicy is one item of an entry's accessPolicies: an EKS access
// policy by name, scoped to namespaces, or to the whole cluster when
// Namespaces is nil.
type AccessPolicy struct {
	Policy     string   // e.g. AmazonEKSViewPolicy (an ARN is reduced to its name)
	Namespaces []string // nil: cluster scope
	Line       int      // 1-based line of the item inside its data key
}

// AccessPolicyARNPrefix is what an access policy ARN starts with, after
// arn:<partition>: (EKS user guide, "Review access policy permissions":
// arn:aws:eks::aws:cluster-access-policy/NAME).
const AccessPolicyARNPrefix = "eks::aws:cluster-access-policy/"

// Access policies, from the EKS user guide's "Review access policy
// permissions" (access-policy-reference): those an access entry of a
// customer's IAM principal may be associated with. ClusterAdmin is the
// equivalent of the system:masters group.
const ClusterAdminPolicy = "AmazonEKSClusterAdminPolicy"

var (
	// AccessPolicies are the policies a person's or a workload's access
	// entry may carry.
	AccessPolicies = []string{
		"AmazonEKSAdminPolicy", ClusterAdminPolicy, "AmazonEKSAdminViewPolicy",
		"AmazonEKSEditPolicy", "AmazonEKSViewPolicy", "AmazonEKSSecretReaderPolicy",
		// For EKS Auto Mode node classes and AWS services acting on the
		// cluster; listed by `aws eks list-access-policies`.
		"AmazonEKSAutoNodePolicy", "AmazonEKSLoadBalancingPolicy", "AmazonEKSNetworkingPolicy",
		"AmazonEKSLoadBalancingClusterPolicy", "AmazonEKSNetworkingClusterPolicy",
		"AmazonAIOpsAssistantPolicy", "AmazonARCRegionSwitchScalingPolicy",
		"AmazonEMRJobPolicy", "AmazonSagemakerHyperpodClusterPolicy",
		"AmazonSagemakerHyperpodControllerPolicy", "AmazonSagemakerHyperpodSystemNamespacePolicy",
	}
	// serviceLinkedOnlyPolicies are "designated for AWS service-linked
	// roles only and cannot be used with customer-managed roles" (same page).
	serviceLinkedOnlyPolicies = []string{
		"AmazonEKSBlockStoragePolicy", "AmazonEKSComputePolicy", "AmazonEKSBlockStorageClusterPolicy",
		"AmazonEKSComputeClusterPolicy", "AmazonEKSHybridPolicy", "AmazonEKSClusterInsightsPolicy",
	}
)

// namespacePattern is a Kubernetes namespace name (an RFC 1123 label), with
// the trailing wildcard EKS accepts in an access scope ("you can specify
// dev-* as a namespace name": EKS user guide, "Associate access policies
// with access entries").
var namespacePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$|^[a-z0-9][-a-z0-9]{0,61}\*$`)

// policyName reduces a policy written as a name or as its ARN to the name.
func policyName(s string) string {
	if rest, ok := strings.CutPrefix(s, "arn:"); ok {
		if _, res, ok := strings.Cut(rest, ":"); ok {
			if name, ok := strings.CutPrefix(res, AccessPolicyARNPrefix); ok {
				return name
			}
		}
	}
	return s
}

// accessPolicies decodes an entry's accessPolicies as validated; items that
// are not valid are left out (validation reported them).
func (e *entry) accessPolicies() []AccessPolicy {
	raw, ok := e.view[fieldAccessPolicies]
	if !ok {
		return nil
	}
	var items []map[string]json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	lines := e.accessPolicyLines()
	var out []AccessPolicy
	for i, it := range items {
		p := AccessPolicy{Line: e.line(fieldAccessPolicies)}
		if i < len(lines) {
			p.Line = lines[i]
		}
		name, ok := jsonString(it["policy"])
		if !ok {
			continue
		}
		p.Policy = policyName(name)
		if ns, has := it["namespaces"]; has && string(ns) != "null" {
			p.Namespaces, _ = jsonStrings(ns)
			sort.Strings(p.Namespaces)
		}
		out = append(out, p)
	}
	return out
}

// accessPolicyLines returns the line of each item of accessPolicies as
// written.
func (e *entry) accessPolicyLines() []int {
	p := e.value(fieldAccessPolicies)
	if p == nil || p.valKind != yaml.SequenceNode {
		return nil
	}
	lines := make([]int, len(p.itemLines))
	for i, l := range p.itemLines {
		lines[i] = e.at(l)
	}
	return lines
}

// validateAccessPolicies checks accessPolicies: a list of {policy, namespaces}
// mappings naming known access policies, with namespaces absent (cluster
// scope) or a non-empty list of namespace names.
func (v *validator) validateAccessPolicies(e *entry) {
	raw, ok := e.view[fieldAccessPolicies]
	if !ok {
		return
	}
	at := func(line int, msg, hint string) {
		v.add(Finding{Severity: SeverityError, Key: e.key, Index: intp(e.index), Field: "accessPolicies", Entry: e.label(),
			Line: line, Reason: "InvalidAccessPolicies", Message: msg, Hint: hint})
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || items == nil {
		at(e.line(fieldAccessPolicies), fmt.Sprintf("accessPolicies is read as %s, not as a list.", describeJSON(raw)),
			"write accessPolicies as a list of '- policy: NAME' items, e.g. '- policy: AmazonEKSViewPolicy'")
		return
	}
	lines := e.accessPolicyLines()
	seen := map[string]int{}
	for i, it := range items {
		line := e.line(fieldAccessPolicies)
		if i < len(lines) {
			line = lines[i]
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(it, &fields) != nil || fields == nil {
			at(line, fmt.Sprintf("accessPolicies item %d is read as %s, not as a mapping.", i, describeJSON(it)),
				"write each item as 'policy: NAME', with 'namespaces: [a, b]' to scope it")
			continue
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k != "policy" && k != "namespaces" {
				hint := "an item has only policy and namespaces"
				if near := charcheck.Near(k, []string{"policy", "namespaces"}); near != "" {
					hint = fmt.Sprintf("did you mean %q?", near)
				}
				at(line, fmt.Sprintf("accessPolicies item %d has the unknown key %q.", i, k), hint)
			}
		}
		name, isString := jsonString(fields["policy"])
		switch {
		case fields["policy"] == nil:
			at(line, fmt.Sprintf("accessPolicies item %d has no policy.", i), "add 'policy: NAME', e.g. policy: AmazonEKSViewPolicy")
			continue
		case !isString:
			at(line, fmt.Sprintf("the policy of accessPolicies item %d is read as %s, not as a name.", i, describeJSON(fields["policy"])),
				"write the policy name, e.g. policy: AmazonEKSViewPolicy")
			continue
		}
		name = policyName(name)
		switch {
		case contains(serviceLinkedOnlyPolicies, name):
			at(line, fmt.Sprintf("the access policy %s is designated for AWS service-linked roles only; EKS refuses it for any other principal.", name),
				"choose one of "+strings.Join(AccessPolicies[:6], ", "))
			continue
		case !contains(AccessPolicies, name):
			hint := "use one of " + strings.Join(AccessPolicies[:6], ", ") + " (aws eks list-access-policies lists them all)"
			if near := charcheck.Near(name, AccessPolicies); near != "" {
				hint = fmt.Sprintf("did you mean %s?", near)
			}
			at(line, fmt.Sprintf("%q is not an EKS access policy.", name), hint)
			continue
		}
		if j, dup := seen[name]; dup {
			at(line, fmt.Sprintf("the access policy %s is listed twice (items %d and %d); an access entry carries each policy once, with one scope.", name, j, i),
				"merge the two items: list every namespace under one of them")
			continue
		}
		seen[name] = i
		nsRaw, has := fields["namespaces"]
		if !has || string(nsRaw) == "null" {
			continue // cluster scope
		}
		var nss []json.RawMessage
		if json.Unmarshal(nsRaw, &nss) != nil || nss == nil {
			at(line, fmt.Sprintf("the namespaces of %s are read as %s, not as a list.", name, describeJSON(nsRaw)),
				"write namespaces as a list, e.g. namespaces: [team-a, team-b]")
			continue
		}
		if len(nss) == 0 {
			at(line, fmt.Sprintf("the namespace list of %s is empty: it would scope the policy to no namespace at all.", name),
				"list the namespaces, or remove 'namespaces:' to grant the policy across the cluster")
			continue
		}
		for _, n := range nss {
			ns, ok := jsonString(n)
			switch {
			case !ok:
				at(line, fmt.Sprintf("a namespace of %s is read as %s, not as a name (YAML 1.1 reads yes/no/on/off as booleans).", name, describeJSON(n)),
					"put the namespace in quotes")
			case !namespacePattern.MatchString(ns):
				at(line, fmt.Sprintf("%q is not a Kubernetes namespace name.", ns),
					"namespace names are up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit; a trailing * matches by prefix (dev-*)")
			}
		}
	}
}

// usualSpelling is how a known field is usually written: lowercase, as the
// authenticator's own fields, except accessPolicies, which is ours.
func usualSpelling(field string) string {
	if field == fieldAccessPolicies {
		return "accessPolicies"
	}
	return field
}
