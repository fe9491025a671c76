package awsauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// usernameTemplates are the only {{...}} placeholders the authenticator
// renders in a username.
var usernameTemplates = map[string]bool{
	"AccountID": true, "SessionName": true, "SessionNameRaw": true,
	"AccessKeyID": true, "EC2PrivateDNSName": true,
}

var templatePattern = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// validator collects findings for one document.
type validator struct {
	findings Findings
	// lint is set when nothing was resolved: $ACCOUNTID placeholders and
	// permission sets without a rolearn are expected.
	lint bool
}

func (v *validator) add(f Finding) { v.findings = append(v.findings, f) }

func (v *validator) entryFinding(sev Severity, e *entry, field, reason, msg, hint string) {
	v.add(Finding{Severity: sev, Key: e.key, Index: intp(e.index), Field: field, Entry: e.label(),
		Line: e.line(field), Reason: reason, Message: msg, Hint: hint})
}

// validateData checks the whole ConfigMap data: size, data keys the
// authenticator would ignore, and each section.
func (v *validator) validateData(data map[string]string, extraBytes int, secs []*section) {
	v.checkSize(data, extraBytes)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, want := range []string{KeyMapRoles, KeyMapUsers, KeyMapAccounts} {
			if k != want && strings.EqualFold(k, want) {
				v.add(Finding{Severity: SeverityError, Key: k, Reason: "IgnoredKey",
					Message: fmt.Sprintf("the data key %q is ignored by the authenticator (data keys are case-sensitive), so none of its mappings would load.", k),
					Hint:    fmt.Sprintf("rename it to %s", want)})
			}
		}
	}
	for _, s := range secs {
		if s.broken {
			continue
		}
		switch s.key {
		case KeyMapAccounts:
			v.validateAccounts(s)
		default:
			v.validateEntries(s)
		}
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
		if !accountIDPattern.MatchString(a) {
			line := 0
			if i < len(s.seq.Content) {
				line = s.seq.Content[i].Line
			}
			v.add(Finding{Severity: SeverityError, Key: s.key, Index: intp(i), Line: line, Reason: "InvalidAccountID",
				Message: fmt.Sprintf("%q is not an AWS account ID.", a),
				Hint:    "write the 12-digit account ID, quoted so leading zeros survive: - \"012345678901\""})
		}
	}
}

func (v *validator) validateEntries(s *section) {
	seen := map[string]*entry{} // identity key → first entry mapping it
	for _, e := range s.entries {
		if !e.isMapping {
			continue // reported when parsed
		}
		if len(e.view) == 0 && len(e.keyNodes) == 0 {
			v.entryFinding(SeverityError, e, "", "EmptyEntry", "the entry is empty; the authenticator would load a mapping that matches nothing.",
				"remove the empty '- ' item or fill it in")
			continue
		}
		v.validateFields(e)
		id := v.validateIdentity(e)
		if id == "" {
			continue
		}
		if first, dup := seen[id]; dup {
			v.entryFinding(SeverityError, e, arnField(e.key), "DuplicateARN",
				fmt.Sprintf("%s[%d] (%s) and %s[%d] (%s) map the same principal; the authenticator keeps only the last one.",
					first.key, first.index, first.label(), e.key, e.index, e.label()),
				"merge the two entries into one (compare ARNs case-insensitively and without path)")
			continue
		}
		seen[id] = e
	}
}

func arnField(key string) string {
	if key == KeyMapUsers {
		return fieldUserARN
	}
	return fieldRoleARN
}

// validateFields checks the fields every entry shares: spelling, types,
// groups and the username.
func (v *validator) validateFields(e *entry) {
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
			hint := "remove it, or check its spelling"
			if near := nearest(k, known); near != "" {
				hint = fmt.Sprintf("did you mean %q?", near)
			}
			v.entryFinding(SeverityWarning, e, spellings[0], "UnknownKey",
				fmt.Sprintf("the key %q is not one the authenticator reads; it is ignored.", spellings[0]), hint)
			continue
		}
		if usual := usualSpelling(k); spellings[0] != usual {
			v.entryFinding(SeverityWarning, e, k, "KeyCase",
				fmt.Sprintf("the key %q works (the authenticator ignores case) but is unusual.", spellings[0]),
				fmt.Sprintf("write it as %q", usual))
		}
	}

	for _, f := range []string{fieldRoleARN, fieldUserARN, fieldUsername, fieldPermissionSet} {
		raw, ok := e.view[f]
		if !ok || !contains(known, f) {
			continue
		}
		if _, isString := e.str(f); !isString {
			v.entryFinding(SeverityError, e, f, "WrongType",
				fmt.Sprintf("%s is read by the authenticator as %s, not as a string (YAML 1.1 reads yes/no/on/off/y/n as booleans and 0x1F or 1e3 as numbers), so the mapping breaks.", f, describeJSON(raw)),
				fmt.Sprintf("put the value of %s in quotes", f))
		}
	}
	// The authenticator ignores userid in aws-auth but still decodes it
	// into a string: any other type makes it report the whole key broken.
	if _, isString := e.str(fieldUserID); e.has(fieldUserID) && !isString {
		v.entryFinding(SeverityError, e, fieldUserID, "WrongType",
			fmt.Sprintf("userid is read by the authenticator as %s, not as a string, so it reports %s as broken.", describeJSON(e.view[fieldUserID]), e.key),
			"remove userid (aws-auth does not use it), or put its value in quotes")
	}
	v.validateGroups(e)
	v.validateAccessPolicies(e)

	username, hasUsername := e.str(fieldUsername)
	switch {
	case !e.has(fieldUsername) || hasUsername && strings.TrimSpace(username) == "":
		v.entryFinding(SeverityWarning, e, fieldUsername, "MissingUsername",
			"the entry has no username; the authenticator cannot name the Kubernetes user.",
			"add a username, e.g. username: admin:{{SessionName}}")
	case hasUsername:
		for _, m := range templatePattern.FindAllStringSubmatch(username, -1) {
			if !usernameTemplates[m[1]] {
				v.entryFinding(SeverityWarning, e, fieldUsername, "UnknownTemplate",
					fmt.Sprintf("the username template {{%s}} is not one the authenticator renders; it stays literally in the name.", m[1]),
					"use {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}} or {{EC2PrivateDNSName}}")
			}
		}
	}
}

func (v *validator) validateGroups(e *entry) {
	raw, ok := e.view[fieldGroups]
	if !ok {
		return
	}
	var groups []json.RawMessage
	if json.Unmarshal(raw, &groups) != nil {
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
		case strings.IndexFunc(name, unicode.IsSpace) >= 0:
			v.entryFinding(SeverityError, e, fieldGroups, "InvalidGroups",
				fmt.Sprintf("the group %q contains whitespace: that is an indentation accident (several '- ' lines read as one group).", name),
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
				"the entry has no userarn; the authenticator would load a mapping that matches nobody.",
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
		return a.identityKey()
	}

	// mapRoles
	ps, hasPS := e.str(fieldPermissionSet)
	if hasPS && !permissionSetPattern.MatchString(ps) {
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
			return "permissionset/" + strings.ToLower(ps)
		}
		if !e.has(fieldPermissionSet) {
			v.entryFinding(SeverityError, e, fieldRoleARN, "MissingARN",
				"the entry has neither a rolearn nor a permissionset; the authenticator would load a mapping that matches nobody.",
				"add rolearn: arn:aws:iam::<account>:role/NAME, or permissionset: NAME for an SSO permission set")
		}
		return "" // an unresolved permission set was reported by Render
	}
	a, err := parseIAMARN(arnText, v.lint)
	if err != nil {
		v.arnFinding(e, fieldRoleARN, err)
		return ""
	}
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
	return a.identityKey()
}

func (v *validator) arnFinding(e *entry, field string, err error) {
	msg, hint := err.Error(), ""
	if ae, ok := err.(*arnError); ok {
		hint = ae.hint
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

// nearest returns the known key within edit distance 2 of k, if any.
func nearest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
