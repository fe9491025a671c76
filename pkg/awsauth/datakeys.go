package awsauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"

	yamlv2 "go.yaml.in/yaml/v2"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// Data-key rules: the authenticator reads exactly three data keys, spelt
// exactly so. Any other key is ignored without a word, so a key that is
// almost one of them — mapusers, map_roles, mapRole, "mapRoles " with a
// trailing space, a look-alike or invisible character — loses every
// mapping written under it.

// checkDataKeys reports each data key that looks like one the
// authenticator reads but is not it.
func checkDataKeys(data map[string]string) Findings {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out Findings
	for _, k := range keys {
		if slices.Contains(dataKeys, k) {
			continue
		}
		want := nearDataKey(k)
		p := charcheck.Value(k)
		if want == "" && p != nil {
			// Like no key the authenticator reads, but not plain either:
			// an invisible or look-alike character where YAML syntax
			// belongs turned part of an entry into a key of its own.
			out = append(out, Finding{Severity: SeverityError, Key: k, Reason: p.Reason,
				Message: fmt.Sprintf("the data key %q holds %s; no such key is read by the authenticator, and a character like this where YAML syntax belongs (an indentation, a ':') turns the lines around it into something else than they look.", k, p.Msg),
				Hint:    p.Hint})
			continue
		}
		if want == "" {
			if target := holdsMappings(data[k]); target != "" {
				// Not a near miss by name, but entries by content: they
				// would not load either.
				out = append(out, Finding{Severity: SeverityError, Key: k, Reason: "IgnoredKey",
					Message: fmt.Sprintf("the data key %q holds entries (%s), but the authenticator reads only %s, %s and %s and ignores every other key, so none of them would load.",
						k, targetField(target), KeyMapRoles, KeyMapUsers, KeyMapAccounts),
					Hint: fmt.Sprintf("move the entries into %s, or delete the key if they are not meant to load", target)})
			}
			continue
		}
		what := ""
		if p != nil {
			what = " (it holds " + p.Msg + ")"
		}
		out = append(out, Finding{Severity: SeverityError, Key: k, Reason: "IgnoredKey",
			Message: fmt.Sprintf("the data key %q%s is not one the authenticator reads: it reads only %s, %s and %s, spelt exactly so (case included), and ignores every other key, so none of the mappings under %q would load.",
				k, what, KeyMapRoles, KeyMapUsers, KeyMapAccounts, k),
			Hint: fmt.Sprintf("did you mean %s? rename the key to %s", want, want)})
	}
	return out
}

// holdsMappings returns the data key whose entries text holds, read as the
// authenticator reads a data key (mapRoles for a list with rolearn or
// permissionset, mapUsers for one with userarn, mapAccounts for a list of
// account IDs), or "".
func holdsMappings(text string) string {
	if len(text) > 64<<10 || isSkippable(text) {
		return "" // not judged: a large value is not a forgotten list of entries
	}
	var accounts []string
	if yamlv2.Unmarshal([]byte(text), &accounts) == nil && len(accounts) > 0 {
		all := true
		for _, a := range accounts {
			all = all && iamarn.ValidAccountID(a)
		}
		if all {
			return KeyMapAccounts
		}
	}
	js, err := sigsyaml.YAMLToJSON([]byte(text))
	var items []map[string]json.RawMessage
	if err == nil && json.Unmarshal(js, &items) == nil {
		for _, it := range items {
			for k := range it {
				switch foldKey(k) {
				case fieldRoleARN, fieldPermissionSet:
					return KeyMapRoles
				case fieldUserARN:
					return KeyMapUsers
				}
			}
		}
	}
	// Lines that read as entries to a person count too, whatever a YAML
	// reader makes of them (a second document, a stray block scalar).
	if m := entryLine.FindStringSubmatch(text); m != nil {
		if foldKey(m[1]) == fieldUserARN {
			return KeyMapUsers
		}
		return KeyMapRoles
	}
	return ""
}

// entryLine matches a line that starts an aws-auth entry or holds its ARN.
var entryLine = regexp.MustCompile(`(?im)(?:^[ \t]*(?:-[ \t]+)?|[{,][ \t]*)(rolearn|userarn|permissionset)[ \t]*:`)

func targetField(key string) string {
	switch key {
	case KeyMapUsers:
		return "userarn"
	case KeyMapAccounts:
		return "account IDs"
	}
	return "rolearn or permissionset"
}

// nearDataKey returns the data key the authenticator reads that k is a
// near miss of (charcheck.Near: the same once case, separators, spaces,
// invisible characters and look-alikes are set aside, or within two edits),
// or "" when k is one of them or nothing like them.
func nearDataKey(k string) string { return charcheck.Near(k, dataKeys) }

// The object the authenticator reads.
const (
	ObjectNamespace = "kube-system"
	ObjectName      = "aws-auth"
)

// CheckObjectName is the rule for a manifest's name and namespace: a
// ConfigMap that only looks like kube-system/aws-auth — a look-alike or
// invisible character, a near miss — is not read by the authenticator,
// and nothing in it loads. A plainly different name is not judged (lint
// may be run on another ConfigMap on purpose); an empty namespace is the
// one kubectl is pointed at.
func CheckObjectName(namespace, name string) Findings {
	var out Findings
	for _, o := range []struct{ what, got, want string }{{"name", name, ObjectName}, {"namespace", namespace, ObjectNamespace}} {
		if o.got == "" || o.got == o.want || charcheck.Near(o.got, []string{o.want}) == "" && charcheck.Value(o.got) == nil {
			continue
		}
		holds := ""
		if p := charcheck.Value(o.got); p != nil {
			holds = " (it holds " + p.Msg + ")"
		}
		out = append(out, Finding{Severity: SeverityError, Reason: "NotAWSAuth",
			Message: fmt.Sprintf("the ConfigMap's %s is %q%s, not %s: the authenticator reads only %s/%s, so none of these mappings would load.", o.what, o.got, holds, o.want, ObjectNamespace, ObjectName),
			Hint:    fmt.Sprintf("set metadata.%s to %s", o.what, o.want)})
	}
	return out
}
