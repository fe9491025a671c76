package awsauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// usernameTemplates are the only {{...}} placeholders the authenticator
// renders in a username.
var usernameTemplates = map[string]bool{
	"AccountID": true, "SessionName": true, "SessionNameRaw": true,
	"AccessKeyID": true, "EC2PrivateDNSName": true,
}

var templatePattern = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// unknownTemplates returns the names of the {{...}} placeholders in a
// username that the authenticator does not render, in order. A username
// whose only "{{" are those of known placeholders written plainly (the
// common case, checked without the regular expression) holds none: taking
// a known placeholder out cannot hide a match of templatePattern, whose
// text between the braces holds no brace.
func unknownTemplates(username string) []string {
	if !strings.Contains(username, "{{") {
		return nil
	}
	rest := username
	for name := range usernameTemplates {
		rest = strings.ReplaceAll(rest, "{{"+name+"}}", "")
	}
	if !strings.Contains(rest, "{{") {
		return nil
	}
	var out []string
	for _, m := range templatePattern.FindAllStringSubmatch(username, -1) {
		if !usernameTemplates[m[1]] {
			out = append(out, m[1])
		}
	}
	return out
}

// validator collects findings for one document.
type validator struct {
	findings Findings
	// lint is set when nothing was resolved: $ACCOUNTID placeholders and
	// permission sets without a rolearn are expected.
	lint bool
	// omitted counts the findings past MaxFindings, not kept, and
	// omittedErrors those of them that are errors.
	omitted, omittedErrors int
}

// add keeps a finding; past MaxFindings it only counts it (see
// validateData).
func (v *validator) add(f Finding) {
	if len(v.findings) >= MaxFindings {
		v.omitted++
		if f.Severity == SeverityError {
			v.omittedErrors++
		}
		return
	}
	v.findings = append(v.findings, f)
}

func (v *validator) entryFinding(sev Severity, e *entry, field, reason, msg, hint string) {
	v.add(Finding{Severity: sev, Key: e.key, Index: intp(e.index), Field: field, Entry: e.label(),
		Line: e.line(field), Reason: reason, Message: msg, Hint: hint})
}

// validateData checks the whole ConfigMap data: size, data keys the
// authenticator would ignore, and each section.
func (v *validator) validateData(data map[string]string, extraBytes int, secs []*section) {
	v.checkSize(data, extraBytes)
	v.findings = append(v.findings, checkDataKeys(data)...)
	for _, s := range secs {
		if s.broken {
			continue
		}
		switch s.key {
		case KeyMapAccounts:
			v.validateAccounts(s)
		default:
			v.validateEntries(s)
			if s.key == KeyMapRoles {
				v.checkPermissionSetCase(s)
			}
		}
	}
	if v.omitted > 0 {
		// An error not kept still refuses the document.
		sev := SeverityWarning
		if v.omittedErrors > 0 {
			sev = SeverityError
		}
		v.findings = append(v.findings, Finding{Severity: sev, Reason: "TooManyProblems",
			Message: fmt.Sprintf("%d more problems (%d of them errors) were found and not kept: the webhook keeps the first %d.", v.omitted, v.omittedErrors, MaxFindings),
			Hint:    "fix the problems listed, then save again"})
	}
}

// checkSize reports, and returns true, when the data (plus extraBytes of
// binaryData) is over the ConfigMap size limit.
func (v *validator) checkSize(data map[string]string, extraBytes int) bool {
	size := extraBytes
	for k, val := range data {
		size += len(k) + len(val)
	}
	if size <= MaxConfigMapBytes {
		return false
	}
	v.add(Finding{Severity: SeverityError, Reason: "TooLarge",
		Message: fmt.Sprintf("the ConfigMap holds %d bytes; a ConfigMap may hold at most %d.", size, MaxConfigMapBytes),
		Hint:    "remove unused entries, or map a group of people to one role"})
	return true
}

func (v *validator) validateAccounts(s *section) {
	for i, a := range s.accounts {
		line := 0
		if i < len(s.seq.Content) {
			line = s.seq.Content[i].Line
		}
		if p := charcheck.Value(a); p != nil {
			v.add(Finding{Severity: SeverityError, Key: s.key, Index: intp(i), Line: line, Reason: p.Reason,
				Message: fmt.Sprintf("the account ID %q holds %s.", a, p.Msg), Hint: p.Hint})
			continue
		}
		if !iamarn.ValidAccountID(a) {
			v.add(Finding{Severity: SeverityError, Key: s.key, Index: intp(i), Line: line, Reason: "InvalidAccountID",
				Message: fmt.Sprintf("%q is not an AWS account ID (12 digits); the authenticator loads it, and it never matches an account.", a),
				Hint:    "write the 12-digit account ID, e.g. - \"111122223333\""})
		}
	}
}

func (v *validator) validateEntries(s *section) {
	seen := map[string]*entry{} // identity key → first entry mapping it
	for _, e := range s.entries {
		if !e.isMapping {
			continue // reported when parsed
		}
		if len(e.view) == 0 && len(e.shape.firsts) == 0 {
			v.entryFinding(SeverityError, e, "", "EmptyEntry", fmt.Sprintf("the entry is empty: the authenticator skips it (an entry needs a %s) and reports %s as broken.", arnField(e.key), e.key),
				"remove the empty '- ' item or fill it in")
			continue
		}
		id := v.checkEntry(e)
		if id == "" {
			continue
		}
		if first, dup := seen[id]; dup {
			effect := "the authenticator keeps only one of them (the last), and the other is silently lost"
			if e.key == KeyMapUsers {
				effect = "the authenticator keeps both and uses either one for that user (which one is not defined)"
			}
			v.entryFinding(SeverityError, e, arnField(e.key), "DuplicateARN",
				fmt.Sprintf("%s[%d] (%s) and %s[%d] (%s) map the same IAM %s: %s.",
					first.key, first.index, first.label(), e.key, e.index, e.label(), strings.TrimSuffix(arnField(e.key), "arn"), effect),
				"merge the two entries into one (compare ARNs case-insensitively and without path)")
			continue
		}
		seen[id] = e
	}
}

// checkEntry applies the rules of one entry (validateFields and
// validateIdentity) and returns its identity key, or what its fields
// remember of an earlier pass (fieldView.passed).
func (v *validator) checkEntry(e *entry) string {
	memo := e.passedMemo(v.lint)
	if memo != nil {
		if id := memo.Load(); id != nil {
			return *id
		}
	}
	before := len(v.findings) + v.omitted
	v.validateFields(e)
	id := v.validateIdentity(e)
	if memo != nil && len(v.findings)+v.omitted == before {
		memo.Store(&id)
	}
	return id
}

// passedMemo is where e's fields remember a pass of the entry rules in this
// lint mode; nil for an entry of another key.
func (e *entry) passedMemo(lint bool) *atomic.Pointer[string] {
	if e.fields == nil {
		return nil
	}
	k := 0
	switch e.key {
	case KeyMapRoles:
	case KeyMapUsers:
		k = 1
	default:
		return nil
	}
	l := 0
	if lint {
		l = 1
	}
	return &e.fields.passed[k][l]
}

func arnField(key string) string {
	if key == KeyMapUsers {
		return fieldUserARN
	}
	return fieldRoleARN
}

// validateFields checks the fields every entry shares: spelling, types,
// characters, groups and the username.
func (v *validator) validateFields(e *entry) {
	v.checkFieldNames(e)
	v.checkFieldCharacters(e)
	for _, f := range []string{fieldRoleARN, fieldUserARN, fieldUsername, fieldPermissionSet} {
		raw, ok := e.view[f]
		if !ok || !contains(knownFields[e.key], f) {
			continue
		}
		if _, isString := e.str(f); !isString {
			effect := fmt.Sprintf("loads the entry without a %s", f)
			switch f {
			case fieldRoleARN, fieldUserARN:
				effect = "skips the entry"
			case fieldPermissionSet:
				effect = "ignores permissionset, but it names no permission set"
			}
			v.entryFinding(SeverityError, e, f, "WrongType",
				fmt.Sprintf("%s is read by the authenticator as %s, not as a string (YAML 1.1 reads yes/no/on/off/y/n as booleans and 0x1F or 1e3 as numbers): it %s and reports %s as broken.", f, describeJSON(raw), effect, e.key),
				fmt.Sprintf("put the value of %s in quotes", f))
		}
	}
	// The authenticator ignores userid in aws-auth but still decodes it
	// into a string: any other type makes it report the whole key broken.
	if _, isString := e.str(fieldUserID); e.has(fieldUserID) && !isString {
		v.entryFinding(SeverityError, e, fieldUserID, "WrongType",
			fmt.Sprintf("userid is read by the authenticator as %s, not as a string: it decodes userid (though aws-auth does not use it), so it reports %s as broken.", describeJSON(e.view[fieldUserID]), e.key),
			"remove userid (aws-auth does not use it), or put its value in quotes")
	}
	v.validateGroups(e)
	v.validateAccessPolicies(e)

	username, hasUsername := e.str(fieldUsername)
	switch {
	case e.misspelt[fieldUsername]:
		// said by the misspelt key
	case !e.has(fieldUsername) || hasUsername && strings.TrimSpace(username) == "":
		v.entryFinding(SeverityWarning, e, fieldUsername, "MissingUsername",
			"the entry has no username: whoever signs in through it gets an empty Kubernetes username, which no RBAC binding names.",
			"add a username, e.g. username: admin:{{SessionName}}")
	case hasUsername:
		for _, name := range unknownTemplates(username) {
			v.entryFinding(SeverityWarning, e, fieldUsername, "UnknownTemplate",
				fmt.Sprintf("the username template {{%s}} is not one the authenticator renders; it stays literally in the name.", name),
				"use {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}} or {{EC2PrivateDNSName}}")
		}
	}
}

// checkFieldNames is the field-name rule: a key the authenticator reads in
// two spellings is an error, an unusual case a warning; an unknown key that
// is a near miss of a field (group, usrname, role_arn, a look-alike or
// invisible character) is an error, because the entry silently loses that
// field; any other unknown key is a warning.
func (v *validator) checkFieldNames(e *entry) {
	known := knownFields[e.key]
	names := make([]string, 0, len(e.written))
	for k := range e.written {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		spellings := e.written[k]
		if len(spellings) > 1 {
			sort.Strings(spellings)
			v.entryFinding(SeverityError, e, k, "DuplicateField",
				fmt.Sprintf("the keys %s all set %s (the authenticator ignores case), and only one of them wins.", strings.Join(quoteAll(spellings), " and "), k),
				"keep one of them")
			continue
		}
		if !contains(known, k) {
			holds := ""
			if p := charcheck.Value(spellings[0]); p != nil {
				holds = " (it holds " + p.Msg + ")"
				if nearField(spellings[0], known) == "" {
					// Not a near miss, but not plain either: most likely
					// YAML syntax that only looks so (a look-alike ':').
					v.entryFinding(SeverityError, e, spellings[0], p.Reason,
						fmt.Sprintf("the key %q%s is not one the authenticator reads; it ignores it.", spellings[0], holds), p.Hint)
					continue
				}
			}
			if near := nearField(spellings[0], known); near != "" && !e.has(near) {
				if e.misspelt == nil {
					e.misspelt = map[string]bool{}
				}
				e.misspelt[near] = true
				v.entryFinding(SeverityError, e, spellings[0], "MisspeltKey",
					fmt.Sprintf("the key %q%s is not one the authenticator reads, so the entry has no %s: the authenticator ignores the key and loads the entry without it.", spellings[0], holds, near),
					fmt.Sprintf("did you mean %q? rename the key to %s", near, near))
				continue
			}
			hint := "remove it, or check its spelling"
			if near := nearField(spellings[0], known); near != "" {
				hint = fmt.Sprintf("did you mean %q? the entry already has %s, so remove the key", near, near)
			}
			v.entryFinding(SeverityWarning, e, spellings[0], "UnknownKey",
				fmt.Sprintf("the key %q%s is not one the authenticator reads; it is ignored.", spellings[0], holds), hint)
			continue
		}
		if usual := usualSpelling(k); spellings[0] != usual {
			v.entryFinding(SeverityWarning, e, k, "KeyCase",
				fmt.Sprintf("the key %q works (the authenticator ignores case) but is unusual.", spellings[0]),
				fmt.Sprintf("write it as %q", usual))
		}
	}
}

// nearField returns the known field k is a near miss of (charcheck.Near),
// or "".
func nearField(k string, known []string) string { return charcheck.Near(k, known) }

// checkFieldCharacters is the field-value character rule: the names the
// authenticator and Kubernetes compare byte for byte — ARNs, usernames,
// groups, permission sets — must not hold invisible, control or
// look-alike characters (charcheck.Value): they make an entry that looks right
// and matches nobody, or a group that looks privileged and is not.
func (v *validator) checkFieldCharacters(e *entry) {
	report := func(field, what string, p *charcheck.Problem) {
		if e.badChars == nil {
			e.badChars = map[string]bool{}
		}
		e.badChars[field] = true
		v.entryFinding(SeverityError, e, field, p.Reason, fmt.Sprintf("%s holds %s.", what, p.Msg), p.Hint)
	}
	for _, f := range []string{fieldRoleARN, fieldUserARN, fieldUsername, fieldPermissionSet} {
		if val, ok := e.str(f); ok {
			if p := charcheck.Value(val); p != nil {
				report(f, fmt.Sprintf("the %s %+q", f, val), p)
			}
		}
	}
	if raw, ok := e.view[fieldGroups]; ok {
		groups, _ := jsonStrings(raw)
		for i, g := range groups {
			if p := charcheck.Value(g); p != nil {
				report(fieldGroups, fmt.Sprintf("group %d, %+q,", i, g), p)
				break
			}
		}
	}
}

func (v *validator) validateGroups(e *entry) {
	raw, ok := e.view[fieldGroups]
	if !ok {
		return
	}
	if string(raw) == "null" {
		// `groups:` with nothing after it (or ~, null): the list that
		// should follow is missing, or indented so that it is not there.
		v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
			"groups is empty ('groups:' with no list): the authenticator loads the entry with no groups at all.",
			"list the groups under groups:, each on its own '- ' line indented below it, or write groups: [] if the entry is meant to have none")
		return
	}
	groups, err := jsonArray(raw)
	if err != nil {
		v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
			fmt.Sprintf("groups is read as %s, not as a list; the authenticator would drop the groups.", describeJSON(raw)),
			"write groups as a list, each group on its own '- ' line under groups:")
		return
	}
	for i, g := range groups {
		name, ok := jsonString(g)
		if !ok {
			v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
				fmt.Sprintf("group %d is read as %s, not as a string.", i, describeJSON(g)),
				"put the group name in quotes")
			continue
		}
		switch {
		case strings.TrimSpace(name) == "":
			v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
				fmt.Sprintf("group %d is empty.", i), "remove the empty '- ' line under groups")
		case strings.ContainsRune(name, ' '):
			v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
				fmt.Sprintf("the group %q contains a space: that is an indentation accident (several '- ' lines read as one group).", name),
				"put each group on its own line, every '- ' at the same indentation under groups:")
		}
	}
}

// validateIdentity checks what the entry maps and returns the key that
// duplicates are found by ("" when the entry maps nothing valid).
func (v *validator) validateIdentity(e *entry) string {
	if e.key == KeyMapUsers {
		if e.has(fieldPermissionSet) {
			v.entryFinding(SeverityError, e, fieldPermissionSet, "PermissionSetInMapUsers",
				"permissionset names an SSO role; it has no meaning in mapUsers.", "move the entry to mapRoles")
		}
		arnText, _ := e.str(fieldUserARN)
		if arnText == "" {
			v.entryFinding(SeverityError, e, fieldUserARN, "MissingARN",
				"the entry has no userarn: the authenticator skips it and reports mapUsers as broken.",
				"add userarn: arn:aws:iam::<account>:user/NAME")
			return ""
		}
		a, err := parseIAMARN(arnText, v.lint)
		if err != nil {
			v.arnFinding(e, fieldUserARN, err)
			return ""
		}
		if a.Kind == "role" {
			v.entryFinding(SeverityError, e, fieldUserARN, "InvalidARN",
				fmt.Sprintf("%q is a role ARN; mapUsers matches IAM users only.", arnText), "move the entry to mapRoles and write it as rolearn")
			return ""
		}
		return a.IdentityKey()
	}

	// mapRoles
	ps, hasPS := e.str(fieldPermissionSet)
	if hasPS && !iamarn.ValidPermissionSetName(ps) {
		v.entryFinding(SeverityError, e, fieldPermissionSet, "InvalidPermissionSet",
			fmt.Sprintf("%q is not a valid permission set name.", ps),
			"permission set names are 1-32 characters of letters, digits and +=,.@_-")
		hasPS = false
	}
	if e.has(fieldSSO) {
		msg := "the sso: matcher is an authenticator alpha feature that is off on EKS; this entry maps nobody."
		if e.has(fieldRoleARN) {
			msg = "an entry with both sso: and rolearn is dropped by the authenticator."
		}
		v.entryFinding(SeverityError, e, fieldSSO, "UnsupportedSSOMatcher", msg,
			"replace sso: with permissionset: NAME; the webhook resolves it to the role ARN")
		return ""
	}
	arnText, _ := e.str(fieldRoleARN)
	if arnText == "" {
		if hasPS && v.lint {
			// Names are case-sensitive and resolved exactly: Admin and
			// admin are two permission sets (and two roles), as render
			// finds them.
			return "permissionset/" + ps
		}
		if !e.has(fieldPermissionSet) {
			v.entryFinding(SeverityError, e, fieldRoleARN, "MissingARN",
				"the entry has neither a rolearn nor a permissionset: the authenticator skips it and reports mapRoles as broken.",
				"add rolearn: arn:aws:iam::<account>:role/NAME, or permissionset: NAME for an SSO permission set")
		}
		return "" // an unresolved permission set was reported by Render
	}
	a, err := parseIAMARN(arnText, v.lint)
	if err != nil {
		v.arnFinding(e, fieldRoleARN, err)
		return ""
	}
	v.checkSSORole(e, a, ps, hasPS)
	if a.Kind != "role" {
		v.entryFinding(SeverityError, e, fieldRoleARN, "InvalidARN",
			fmt.Sprintf("%q is not a role ARN; mapRoles matches IAM roles only.", arnText), "move the entry to mapUsers and write it as userarn")
		return ""
	}
	if a.Path != "/" {
		v.entryFinding(SeverityWarning, e, fieldRoleARN, "PathInARN",
			fmt.Sprintf("%q has the IAM path %q; the authenticator compares against the ARN without it and would never match.", arnText, a.Path),
			fmt.Sprintf("write %s (render and the webhook strip the path for you)", a.Canonical()))
	}
	return a.IdentityKey()
}

// checkSSORole is the rule for a rolearn that names an IAM Identity Center
// role: without permissionset it stops matching when the permission set is
// re-provisioned (the suffix changes); with a permissionset that is not its
// own, render replaces it, changing whom the entry maps. Both are said.
func (v *validator) checkSSORole(e *entry, a iamarn.Principal, ps string, hasPS bool) {
	if a.Kind != iamarn.KindRole {
		return
	}
	owner, _, ok := iamarn.ParseSSORoleName(a.Name)
	switch {
	case !ok:
	case !e.has(fieldPermissionSet):
		v.entryFinding(SeverityWarning, e, fieldRoleARN, "SSORoleWithoutPermissionSet",
			fmt.Sprintf("the rolearn is the IAM Identity Center role of the permission set %q; its random suffix changes when the permission set is provisioned again, and the entry then matches nobody.", owner),
			fmt.Sprintf("add permissionset: %s to the entry: the webhook then keeps its rolearn current", owner))
	case hasPS && owner != ps && v.lint:
		v.entryFinding(SeverityWarning, e, fieldRoleARN, "RoleOfOtherPermissionSet",
			fmt.Sprintf("the rolearn is the role of the permission set %q, but permissionset says %q: render and the webhook replace it with the role of %q, so the entry will map %q.", owner, ps, ps, ps),
			fmt.Sprintf("if the entry is meant for %s, write permissionset: %s", owner, owner))
	}
}

// checkPermissionSetCase warns about permission sets whose names differ
// only in case: they are two permission sets (names are case-sensitive and
// matched exactly), which is rarely what was meant.
func (v *validator) checkPermissionSetCase(s *section) {
	first := map[string]*entry{}
	for _, e := range s.entries {
		ps, ok := e.str(fieldPermissionSet)
		if !e.isMapping || !ok || ps == "" {
			continue
		}
		lower := strings.ToLower(ps)
		prev, seen := first[lower]
		if !seen {
			first[lower] = e
			continue
		}
		if other, _ := prev.str(fieldPermissionSet); other != ps {
			v.entryFinding(SeverityWarning, e, fieldPermissionSet, "PermissionSetCase",
				fmt.Sprintf("the permission sets %q and %q (%s[%d]) differ only in case: IAM Identity Center names are case-sensitive, so these are two permission sets with two roles.", ps, other, prev.key, prev.index),
				"check that both exist (render refuses the one that does not), or write the name as the other entry does")
		}
	}
}

func (v *validator) arnFinding(e *entry, field string, err error) {
	if e.badChars[field] {
		return // the character rule said what is wrong, better
	}
	msg, hint := err.Error(), ""
	if ae := (*iamarn.Error)(nil); errors.As(err, &ae) {
		hint = ae.Hint
	}
	v.entryFinding(SeverityError, e, field, "InvalidARN", msg+".", hint)
}

// describeJSON says what the authenticator decoded a value as.
func describeJSON(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "null":
		return "null (empty)"
	case s == "true" || s == "false":
		return "the boolean " + s
	case strings.HasPrefix(s, "{"):
		return "a mapping"
	case strings.HasPrefix(s, "["):
		return "a list"
	case strings.HasPrefix(s, `"`):
		return "the string " + s
	}
	return "the number " + s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
