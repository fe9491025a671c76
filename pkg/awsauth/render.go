package awsauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// Options tune Render.
type Options struct {
	// NodeRoleARNs are the node roles that must be mapped: Render adds the
	// node entry for each one that no entry maps.
	NodeRoleARNs []string
	// KeepUnresolved keeps the rolearn of an entry whose permission set no
	// longer resolves, with a warning instead of an error. The resync loop
	// sets it: it never drops an entry it cannot resolve.
	KeepUnresolved bool
	// ExtraBytes counts toward the ConfigMap size limit (its binaryData).
	ExtraBytes int
	// Cache, when set, remembers how items of mapRoles and mapUsers read,
	// from one call to the next. It changes no answer, only how much
	// reading is done again (see ItemCache).
	Cache ItemCache
}

// Result is what Render and Lint produce.
type Result struct {
	// Data is the ConfigMap data after rewriting. Keys that did not change
	// keep the caller's strings.
	Data map[string]string
	// Changed lists the data keys whose text changed, sorted.
	Changed  []string
	Findings Findings
	// Roles and Users are the mappings the authenticator loads from Data,
	// and Accounts the account IDs of mapAccounts.
	Roles, Users []Mapping
	Accounts     []string
	// AddedNodeRoles are the node roles Render added an entry for.
	AddedNodeRoles []string
}

// AsLoaded is the Result as the authenticator loads it. It is exact for a
// Result without errors: what the engine admits, the authenticator loads
// exactly so (the differential test holds the engine to that).
func (r *Result) AsLoaded() *Loaded {
	l := &Loaded{Accounts: r.Accounts, Errors: map[string]error{}}
	l.Roles, l.Users = slices.Grow(l.Roles, len(r.Roles)), slices.Grow(l.Users, len(r.Users))
	for _, m := range r.Roles {
		l.Roles = append(l.Roles, LoadedMapping{Index: m.Index, ARN: m.ARN, Username: m.Username, Groups: m.Groups, PermissionSet: m.PermissionSet})
	}
	for _, m := range r.Users {
		l.Users = append(l.Users, LoadedMapping{Index: m.Index, ARN: m.ARN, Username: m.Username, Groups: m.Groups})
	}
	return l
}

// Mapping is one entry as the authenticator will load it.
type Mapping struct {
	Index         int
	ARN           string // rolearn or userarn as written
	PermissionSet string
	Username      string
	Groups        []string
	// AccessPolicies is the entry's accessPolicies, as validated.
	AccessPolicies []AccessPolicy
}

// Label names the mapping for people.
func (m Mapping) Label() string {
	if m.PermissionSet != "" {
		return "permissionset " + m.PermissionSet
	}
	return m.ARN
}

// LookupError says that AWS could not answer a question the document needs
// answered; nothing was rewritten.
type LookupError struct {
	Call  string   // the AWS call that failed, e.g. iam:ListRoles
	Names []string // the permission sets left unresolved, if any
	Err   error
}

func (e *LookupError) Error() string {
	if len(e.Names) > 0 {
		return fmt.Sprintf("cannot resolve permission set(s) %s: %s is unavailable: %v; they may well exist, try again later",
			strings.Join(e.Names, ", "), e.Call, e.Err)
	}
	return fmt.Sprintf("%s failed: %v", e.Call, e.Err)
}

func (e *LookupError) Unwrap() error { return e.Err }

// Lint validates the structure of aws-auth data without any AWS call.
func Lint(data map[string]string) *Result {
	return LintWithOptions(data, Options{})
}

// LintWithOptions is Lint with the size of binaryData counted.
func LintWithOptions(data map[string]string, opts Options) *Result {
	return lint(data, opts, reading{cache: opts.Cache})
}

func lint(data map[string]string, opts Options, rd reading) *Result {
	if res := tooLarge(data, opts); res != nil {
		return res
	}
	secs, findings := parseData(data, rd)
	v := &validator{lint: true}
	v.validateData(data, opts.ExtraBytes, secs)
	return newResult(data, nil, secs, append(findings, v.findings...))
}

// Render resolves what the document asks for — permission sets, the
// $ACCOUNTID placeholder, pathed role ARNs, missing node roles — and
// validates the result. It is the one rewrite used by the webhook, the
// resync loop and the CLI. The error is non-nil only when AWS could not
// answer a question the document needs (a *LookupError) or the options are
// invalid; a document that is rejected comes back with error findings.
func Render(ctx context.Context, data map[string]string, r Resolver, opts Options) (*Result, error) {
	res, err := render(ctx, data, r, opts, reading{cache: opts.Cache})
	if errors.Is(err, errReadWhole) {
		res, err = render(ctx, data, r, opts, reading{cache: opts.Cache, whole: true})
	}
	return res, err
}

func render(ctx context.Context, data map[string]string, r Resolver, opts Options, rd reading) (*Result, error) {
	nodeRoles, err := canonicalNodeRoles(opts.NodeRoleARNs)
	if err != nil {
		return nil, err
	}
	if res := tooLarge(data, opts); res != nil {
		return res, nil
	}
	secs, findings := parseData(data, rd)
	if findings.HasErrors() {
		// A document that cannot be read is not edited: report and stop.
		v := &validator{lint: true}
		v.validateData(data, opts.ExtraBytes, secs)
		return newResult(data, nil, secs, append(findings, v.findings...)), nil
	}

	rw := &rewriter{opts: opts, editors: map[string]*editor{}}
	rw.sections = append(rw.sections, secs...)
	if err := rw.resolve(ctx, r); err != nil {
		return nil, err
	}
	rw.rewriteEntries()
	rw.ensureNodeRoles(nodeRoles)

	out := make(map[string]string, len(data)+1)
	for k, v := range data {
		out[k] = v
	}
	var changed []string
	reread := map[string]*section{}
	lineOf := map[string]func(int) int{}
	// The entries as first read are done with: let the memory they hold go
	// before the edited text is read back (a large aws-auth is otherwise
	// held twice at once). The edited trees stay: read-back compares them.
	for _, ed := range rw.editors {
		if ed.changed {
			ed.sec.entries = nil
		}
	}
	for key, ed := range rw.editors {
		if !ed.changed {
			continue
		}
		text, sec, orig, err := ed.result()
		if err != nil {
			return nil, err
		}
		reread[key], lineOf[key] = sec, orig
		if text != data[key] {
			out[key] = text
			changed = append(changed, key)
		}
	}
	sort.Strings(changed)

	// Judge the result as written, from scratch: an edited section as read
	// back from its new text, any other as parsed above — its text is the
	// same and no edit touched its tree, so parsing it again would give the
	// same section.
	var final []*section
	var parseFindings Findings
	for _, key := range dataKeys {
		if _, ok := out[key]; !ok {
			continue
		}
		s := reread[key]
		if s == nil {
			s = rw.section(key)
		}
		final = append(final, s)
		parseFindings = append(parseFindings, s.findings...)
	}
	v := &validator{}
	v.validateData(out, opts.ExtraBytes, final)
	// Findings about the rewritten text name the lines the user wrote.
	all := append(rw.findings, toOriginalLines(parseFindings, lineOf)...)
	res := newResult(out, changed, final, append(all, toOriginalLines(v.findings, lineOf)...))
	res.AddedNodeRoles = rw.addedNodeRoles
	return res, nil
}

// toOriginalLines maps the lines of findings about rewritten keys back onto
// the text as written (a copy; the others are left as they are).
func toOriginalLines(fs Findings, lineOf map[string]func(int) int) Findings {
	if len(lineOf) == 0 {
		return fs
	}
	out := make(Findings, len(fs))
	for i, f := range fs {
		if orig := lineOf[f.Key]; orig != nil && f.Line > 0 {
			f.Line = orig(f.Line)
		}
		out[i] = f
	}
	return out
}

// tooLarge rejects data over the ConfigMap size limit before parsing any
// of it: the apiserver would refuse the object anyway, and parsing a
// document of that size costs hundreds of MiB.
func tooLarge(data map[string]string, opts Options) *Result {
	v := &validator{lint: true}
	if !v.checkSize(data, opts.ExtraBytes) {
		return nil
	}
	return newResult(data, nil, nil, v.findings)
}

// dataKeys are the keys the authenticator reads, in the order they are
// parsed and reported.
var dataKeys = []string{KeyMapRoles, KeyMapUsers, KeyMapAccounts}

// parseData parses the three keys the authenticator reads, in a fixed order.
func parseData(data map[string]string, rd reading) ([]*section, Findings) {
	var secs []*section
	var findings Findings
	for _, key := range dataKeys {
		text, ok := data[key]
		if !ok {
			continue
		}
		s, f := parseSection(key, text, rd)
		s.findings = f
		secs = append(secs, s)
		findings = append(findings, f...)
	}
	return secs, findings
}

func newResult(data map[string]string, changed []string, secs []*section, findings Findings) *Result {
	res := &Result{Data: data, Changed: changed, Findings: findings}
	for _, s := range secs {
		n := 0
		for _, e := range s.entries {
			if e.isMapping {
				n++
			}
		}
		switch s.key {
		case KeyMapRoles:
			res.Roles = slices.Grow(res.Roles, n)
		case KeyMapUsers:
			res.Users = slices.Grow(res.Users, n)
		}
	}
	for _, s := range secs {
		if s.key == KeyMapAccounts {
			res.Accounts = s.accounts
		}
		for _, e := range s.entries {
			if !e.isMapping {
				continue
			}
			m := Mapping{Index: e.index}
			m.ARN, _ = e.str(arnField(s.key))
			m.PermissionSet, _ = e.str(fieldPermissionSet)
			m.Username, _ = e.str(fieldUsername)
			m.Groups = e.groups() // a non-list was reported
			m.AccessPolicies = e.accessPolicies()
			switch s.key {
			case KeyMapRoles:
				res.Roles = append(res.Roles, m)
			case KeyMapUsers:
				res.Users = append(res.Users, m)
			}
		}
	}
	return res
}

func canonicalNodeRoles(arns []string) ([]string, error) {
	var out []string
	for _, s := range arns {
		a, err := parseIAMARN(strings.TrimSpace(s), false)
		if err != nil {
			return nil, fmt.Errorf("node role ARN: %w", err)
		}
		if a.Kind != "role" {
			return nil, fmt.Errorf("node role ARN %q is not an IAM role ARN", s)
		}
		out = append(out, a.Canonical())
	}
	return out, nil
}

// rewriter carries one Render call's state.
type rewriter struct {
	opts     Options
	sections []*section
	editors  map[string]*editor
	findings Findings

	account        Account
	addedNodeRoles []string
	resolved       map[string]string   // permission set → role ARN
	ambiguous      map[string][]string // permission set → every role claiming it
	missing        map[string]bool     // permission sets that do not exist
	existing       []string
}

func (rw *rewriter) editor(s *section) *editor {
	ed, ok := rw.editors[s.key]
	if !ok {
		ed = newEditor(s, s.doc)
		rw.editors[s.key] = ed
	}
	return ed
}

func (rw *rewriter) section(key string) *section {
	for _, s := range rw.sections {
		if s.key == key {
			return s
		}
	}
	return nil
}

// resolve asks AWS, once each, only the questions the document raises.
func (rw *rewriter) resolve(ctx context.Context, r Resolver) error {
	needAccount := false
	seen := map[string]bool{}
	var names []string
	for _, s := range rw.sections {
		for _, e := range s.entries {
			if !e.isMapping {
				continue
			}
			if v, ok := e.str(arnField(s.key)); ok && strings.Contains(v, AccountIDPlaceholder) {
				needAccount = true
			}
			if ps, ok := e.str(fieldPermissionSet); ok && s.key == KeyMapRoles && iamarn.ValidPermissionSetName(ps) && !seen[ps] {
				seen[ps] = true
				names = append(names, ps)
			}
		}
	}
	if (needAccount || len(names) > 0) && r == nil {
		return fmt.Errorf("this document needs AWS lookups, but no AWS resolver is configured")
	}
	if needAccount {
		acct, err := r.Account(ctx)
		if err != nil {
			return &LookupError{Call: "sts:GetCallerIdentity", Err: err}
		}
		rw.account = acct
	}
	if len(names) == 0 {
		return nil
	}
	lookup, err := r.PermissionSetRoles(ctx, names)
	rw.resolved, rw.missing, rw.existing, rw.ambiguous = lookup.ARNs, map[string]bool{}, lookup.Existing, lookup.Ambiguous
	var unresolved []string
	for _, n := range names {
		if _, ok := lookup.ARNs[n]; !ok {
			unresolved = append(unresolved, n)
			rw.missing[n] = true
		}
	}
	if err != nil && len(unresolved) > 0 {
		return &LookupError{Call: "iam:ListRoles", Names: unresolved, Err: err}
	}
	if lookup.Stale != nil {
		rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Reason: "StaleLookup",
			Message: fmt.Sprintf("IAM could not be asked (%v); permission sets were resolved from the last known roles.", lookup.Stale),
			Hint:    "nothing to do if the permission sets did not change; the webhook retries IAM on its own"})
	}
	return nil
}

// rewriteEntries fills in rolearn from permissionset, replaces
// $ACCOUNTID, and strips IAM paths from role ARNs.
func (rw *rewriter) rewriteEntries() {
	for _, s := range rw.sections {
		if s.key == KeyMapAccounts {
			continue
		}
		field := arnField(s.key)
		for _, e := range s.entries {
			if !e.isMapping {
				continue
			}
			if e.shape.alias {
				continue // editing an anchor would change every alias of it
			}
			if ps, ok := e.str(fieldPermissionSet); ok && s.key == KeyMapRoles {
				rw.rewritePermissionSet(s, e, ps)
				continue
			}
			value := e.value(field)
			if value == nil || value.valKind != yaml.ScalarNode {
				continue
			}
			arnText, _ := e.str(field)
			next := strings.ReplaceAll(arnText, AccountIDPlaceholder, rw.account.ID)
			if a, err := parseIAMARN(next, false); err == nil && a.Kind == "role" && a.Path != "/" {
				next = a.Canonical()
				rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Key: s.key, Index: intp(e.index),
					Field: field, Entry: e.label(), Line: e.line(field), Reason: "PathStripped",
					Message: fmt.Sprintf("the IAM path %q was removed from the role ARN (the authenticator compares ARNs without it).", a.Path),
					Hint:    "write role ARNs without their path"})
			}
			if next != arnText {
				item, _, valueNode := e.own(s, field)
				rw.editor(s).setScalar(item, valueNode, next)
			}
		}
	}
}

func (rw *rewriter) rewritePermissionSet(s *section, e *entry, ps string) {
	target, ok := rw.resolved[ps]
	if !ok {
		if !rw.missing[ps] {
			return // an invalid name; reported by validation
		}
		existing := "none"
		if len(rw.existing) > 0 {
			existing = strings.Join(rw.existing, ", ")
		}
		if rw.opts.KeepUnresolved && e.has(fieldRoleARN) {
			rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Key: s.key, Index: intp(e.index),
				Field: fieldPermissionSet, Entry: e.label(), Line: e.line(fieldPermissionSet), Reason: "PermissionSetUnresolved",
				Message: fmt.Sprintf("the permission set %q no longer has a role in the account; the entry keeps its last known rolearn.", ps),
				Hint:    fmt.Sprintf("assign the permission set to the account again, or remove the entry (existing: %s)", existing)})
			return
		}
		hint := "check the name (it is case-sensitive and matched exactly) and that the permission set is assigned to this account"
		if near := nearPermissionSet(ps, rw.existing); near != "" {
			hint = fmt.Sprintf("did you mean %s? names are case-sensitive and matched exactly; or check that %s is assigned to this account", near, ps)
		}
		rw.findings = append(rw.findings, Finding{Severity: SeverityError, Key: s.key, Index: intp(e.index),
			Field: fieldPermissionSet, Entry: e.label(), Line: e.line(fieldPermissionSet), Reason: "UnknownPermissionSet",
			Message: fmt.Sprintf("the permission set %q has no role in this account (permission sets that do: %s).", ps, existing),
			Hint:    hint})
		return
	}
	if all := rw.ambiguous[ps]; len(all) > 1 {
		rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Key: s.key, Index: intp(e.index),
			Field: fieldPermissionSet, Entry: e.label(), Line: e.line(fieldPermissionSet), Reason: "AmbiguousPermissionSet",
			Message: fmt.Sprintf("the permission set %q has %d roles in this account (%s), provisioned through more than one IAM Identity Center path; %s, the most recently created, is written.", ps, len(all), strings.Join(all, ", "), target),
			Hint:    "delete the roles Identity Center no longer uses; to map another of them, write its rolearn without permissionset"})
	}
	value := e.value(fieldRoleARN)
	switch {
	case value == nil:
		item, before, _ := e.own(s, fieldPermissionSet)
		rw.editor(s).insertField(item, before, fieldRoleARN, target)
	case value.valKind == yaml.ScalarNode && value.value != target:
		if a, err := parseIAMARN(value.value, false); err == nil {
			if owner, _, ok := iamarn.ParseSSORoleName(a.Name); ok && owner != ps {
				rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Key: s.key, Index: intp(e.index),
					Field: fieldRoleARN, Entry: e.label(), Line: e.line(fieldRoleARN), Reason: "RoleOfOtherPermissionSet",
					Message: fmt.Sprintf("the rolearn was the role of the permission set %q, but permissionset says %q: it was replaced with the role of %q, so the entry now maps that role.", owner, ps, ps),
					Hint:    fmt.Sprintf("if the entry is meant for %s, write permissionset: %s", owner, owner)})
			}
		}
		item, _, valueNode := e.own(s, fieldRoleARN)
		rw.editor(s).setScalar(item, valueNode, target)
	}
}

// nearPermissionSet returns the existing permission set name is a near
// miss of (another case, a separator, a look-alike, a typo), or "".
func nearPermissionSet(name string, existing []string) string {
	for _, e := range existing {
		if strings.EqualFold(e, name) {
			return e
		}
	}
	return charcheck.Near(name, existing)
}

// ensureNodeRoles adds the node entry for each node role no entry maps.
func (rw *rewriter) ensureNodeRoles(nodeRoles []string) {
	if len(nodeRoles) == 0 {
		return
	}
	s := rw.section(KeyMapRoles)
	if s == nil {
		s = &section{key: KeyMapRoles}
		rw.sections = append(rw.sections, s)
	}
	mapped := map[string]bool{}
	if ed := rw.editors[KeyMapRoles]; ed != nil && ed.seq != nil {
		collectRoleKeys(s, ed.seq, mapped)
	} else if s.seq != nil {
		collectRoleKeys(s, s.seq, mapped)
	}
	for _, role := range nodeRoles {
		a, _ := parseIAMARN(role, false)
		if mapped[a.IdentityKey()] {
			continue
		}
		rw.editor(s).appendNodeRoleEntry(role)
		mapped[a.IdentityKey()] = true
		rw.addedNodeRoles = append(rw.addedNodeRoles, role)
		rw.findings = append(rw.findings, Finding{Severity: SeverityWarning, Key: KeyMapRoles, Entry: fieldRoleARN + " " + role, Reason: "NodeRoleAdded",
			Message: fmt.Sprintf("no entry mapped the node role %s, so one was added (username %s, groups %s).", role, NodeUsername, strings.Join(NodeGroups, ", ")),
			Hint:    "nothing to do: nodes need this entry to join; the webhook keeps every configured node role mapped"})
	}
}

// collectRoleKeys records the identity of every rolearn in the (possibly
// edited) list of s: from an item's tree where it has one, else from its
// entry's shape (an item read on its own and not edited).
func collectRoleKeys(s *section, seq *yaml.Node, into map[string]bool) {
	for i, item := range seq.Content {
		if item == nil {
			for _, k := range s.entries[i].shape.roleIdentities() {
				into[k] = true
			}
			continue
		}
		if item.Kind == yaml.AliasNode {
			item = item.Alias
		}
		if item.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			if k, ok := roleIdentity(item.Content[i].Value, item.Content[i+1].Value); ok {
				into[k] = true
			}
		}
	}
}

// roleIdentity is the identity key of value when key is a rolearn key and
// value a valid IAM ARN.
func roleIdentity(key, value string) (string, bool) {
	if !strings.EqualFold(key, fieldRoleARN) {
		return "", false
	}
	a, err := parseIAMARN(value, false)
	if err != nil {
		return "", false
	}
	return a.IdentityKey(), true
}
