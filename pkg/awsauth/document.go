package awsauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"
	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
)

// The data keys the EKS authenticator reads. They are case-sensitive: a
// "mapusers" key is silently ignored.
const (
	KeyMapRoles    = "mapRoles"
	KeyMapUsers    = "mapUsers"
	KeyMapAccounts = "mapAccounts"
)

// MaxConfigMapBytes is the most data (and binaryData) a ConfigMap may hold.
const MaxConfigMapBytes = 1 << 20

// section is one data key of aws-auth, read twice: as a goyaml.v3 node tree
// (positions, comments, editing) and the way the authenticator reads it
// (YAML 1.1 through sigs.k8s.io/yaml, then JSON), which is the one that
// decides what gets loaded.
type section struct {
	key  string
	text string
	// doc is the parsed document and seq its top-level sequence; seq is nil
	// when the key is empty (the authenticator skips blank, `` and ""
	// values) or unreadable.
	doc     *yaml.Node
	seq     *yaml.Node
	entries []*entry
	// accounts holds mapAccounts as the authenticator decodes it.
	accounts []string
	// broken is set when the section could not be read; its findings say
	// why and nothing in it may be edited.
	broken bool
	// findings are what parseSection reported.
	findings Findings
	// reading is how the section was read; the text as edited is read
	// back the same way.
	reading reading
	// perItem is set when the section was read item by item: items holds
	// the items' texts, and the list (seq) holds the trees of the items
	// that were edited, nil for the others. It has no comments outside the
	// items, so it is never encoded as the text of the section.
	perItem bool
	items   []string
}

// entry is one item of mapRoles or mapUsers.
type entry struct {
	key   string
	index int
	// shape is the item as goyaml.v3 reads it, without the tree; for an
	// item read on its own it is the cached one, shared with every reading
	// of that item's text, and never changed.
	shape *itemShape
	// node is the item's tree: always for a key read whole; for an item
	// read on its own only once own has read it again to be edited.
	node *yaml.Node
	// text is the item's text, when it was read on its own.
	text string
	// shift is what to add to the shape's lines to get lines of the key:
	// an item read on its own counts its lines from its first line.
	shift int
	// isMapping is false for an item that is not a mapping; it was reported
	// when parsed and is neither validated further nor edited.
	isMapping bool
	// view is the entry as the authenticator decodes it, by lowercased key;
	// written holds every spelling seen per lowercased key.
	view    map[string]json.RawMessage
	written map[string][]string
	// strs holds, decoded once, the fields of view that are JSON strings.
	strs map[string]string
	// fields is where view, written and strs come from: shared by every
	// entry read from the same item text, it remembers their verdict.
	fields *fieldView
	// badChars marks the fields the character rule reported, misspelt
	// the fields a near-miss key stands for.
	badChars, misspelt map[string]bool
}

// str returns a field's value when the authenticator reads it as a string.
func (e *entry) str(field string) (string, bool) {
	s, ok := e.strs[field]
	return s, ok
}

// jsonString decodes raw as encoding/json decodes a JSON string into a Go
// string, and reports false when raw is not a string. Text between the
// quotes without escapes, quotes, control bytes or invalid UTF-8 is the
// decoded value as is (encoding/json returns those bytes unchanged); any
// other text goes through encoding/json itself.
func jsonString(raw []byte) (string, bool) {
	if len(raw) > 0 && strings.IndexByte("[{-0123456789tf", raw[0]) >= 0 {
		// A list, object, number or boolean: encoding/json refuses to
		// decode it into a string (only null decodes, to "").
		return "", false
	}
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		plain := true
		for _, c := range inner {
			if c == '\\' || c == '"' || c < 0x20 {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(inner) {
			return string(inner), true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonStrings decodes raw as encoding/json decodes a JSON value into a
// []string; ok is false when it is not a list of strings (a list with
// other items decodes partly, as encoding/json leaves it).
func jsonStrings(raw []byte) ([]string, bool) {
	if items, err := jsonArray(raw); err == nil && items != nil {
		out := make([]string, len(items))
		all := true
		for i, it := range items {
			if out[i], all = jsonString(it); !all {
				break
			}
		}
		if all {
			return out, true
		}
	}
	var out []string
	_ = json.Unmarshal(raw, &out)
	return out, false
}

// has reports whether the field is present (with any value).
func (e *entry) has(field string) bool {
	_, ok := e.view[field]
	return ok
}

// line is the 1-based line of a field, or of the entry when the field is
// absent.
func (e *entry) line(field string) int {
	if p, _ := e.shape.pair(field); p != nil {
		return e.at(p.keyLine)
	}
	return e.at(e.shape.line)
}

// at is the line of the key that a line of the entry's shape is on.
func (e *entry) at(line int) int {
	if line > 0 {
		return line + e.shift
	}
	return line
}

// value is the pair a field is read from, or nil when it is absent.
func (e *entry) value(field string) *shapePair {
	p, _ := e.shape.pair(field)
	return p
}

// own gives the entry a tree of its own, at the lines of the key, so that
// it can be edited, and puts it in s's list, and returns the item node and
// the key and value nodes of field (nil when absent). An item read on its
// own is read again from its text: only edited entries need a tree. Each
// entry is edited once, so the shape's pairs still index the tree.
func (e *entry) own(s *section, field string) (item, key, value *yaml.Node) {
	if e.node == nil {
		_, e.node = readItem(e.text)
		shiftLines(e.node, e.shift)
		s.seq.Content[e.index] = e.node
	}
	if _, j := e.shape.pair(field); j >= 0 {
		return e.node, e.node.Content[2*j], e.node.Content[2*j+1]
	}
	return e.node, nil, nil
}

// shiftLines moves a tree's lines down by lines (a tree of an item read
// on its own has no aliases).
func shiftLines(n *yaml.Node, lines int) {
	if n.Line > 0 {
		n.Line += lines
	}
	for _, c := range n.Content {
		shiftLines(c, lines)
	}
}

// label names the entry for people: its permission set, else its ARN
// (quoted, with escapes, when it holds characters one cannot see).
func (e *entry) label() string {
	show := func(v string) string {
		if charcheck.Value(v) != nil {
			return fmt.Sprintf("%+q", v)
		}
		return v
	}
	if ps, ok := e.str(fieldPermissionSet); ok && ps != "" {
		return "permissionset " + show(ps)
	}
	for _, f := range []string{fieldRoleARN, fieldUserARN} {
		if v, ok := e.str(f); ok && v != "" {
			return f + " " + show(v)
		}
	}
	return ""
}

// Field names, lowercased as the authenticator (encoding/json) matches them.
const (
	fieldRoleARN       = "rolearn"
	fieldUserARN       = "userarn"
	fieldUsername      = "username"
	fieldGroups        = "groups"
	fieldPermissionSet = "permissionset"
	fieldSSO           = "sso"
	fieldUserID        = "userid"
)

// knownFields are the fields an entry of each key may have, spelled the
// usual way.
var knownFields = map[string][]string{
	KeyMapRoles: {"rolearn", "username", "groups", "permissionset", "sso", "userid", fieldAccessPolicies},
	KeyMapUsers: {"userarn", "username", "groups", "userid", fieldAccessPolicies},
}

// isSkippable mirrors the authenticator: these values are treated as absent.
func isSkippable(text string) bool {
	t := strings.TrimSpace(text)
	return t == "" || t == "``" || t == `""` || t == "''"
}

// foldKey folds a field name the way encoding/json matches it against the
// authenticator's struct fields (bytes.EqualFold: Unicode simple case
// folding): each rune becomes the smallest of its folding orbit, ASCII
// letters lowercase. "groupſ" with a long s sets groups and a Kelvin sign
// matches k; a dotless ı or a dotted İ matches no i (they fold to nothing
// but themselves), as the differential found.
func foldKey(k string) string {
	if isASCII(k) {
		// Every ASCII letter's orbit holds its upper and lower case (and
		// for k and s a non-ASCII sign), the upper case the smallest.
		return strings.ToLower(k)
	}
	return foldOrbits(k)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldOrbits is foldKey's rule for any text: each rune becomes the
// smallest of its folding orbit, lowercased when that is ASCII.
func foldOrbits(k string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if least < utf8.RuneSelf {
			return unicode.ToLower(least)
		}
		return least
	}, k)
}

// findTag returns the first node under n (aliases not followed) whose tag
// is tag.
func findTag(n *yaml.Node, tag string) *yaml.Node {
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	if n.ShortTag() == tag {
		return n
	}
	for _, c := range n.Content {
		if f := findTag(c, tag); f != nil {
			return f
		}
	}
	return nil
}

var yamlLinePattern = regexp.MustCompile(`line (\d+)`)

// errorLine pulls the line number out of a YAML parser error.
func errorLine(err error) int {
	if m := yamlLinePattern.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// parseSection reads one data key, in steps: the text rules; the YAML tree
// and the authenticator's reading — item by item where that is provably
// the same (reading.go), else of the whole text; then each entry.
// Structural problems become findings and mark the section broken.
func parseSection(key, text string, rd reading) (*section, Findings) {
	s := &section{key: key, text: text, reading: rd}
	if isSkippable(text) {
		return s, nil
	}
	var spans []itemSpan
	var readings []*ItemReading
	itemwise := false
	if key != KeyMapAccounts && !rd.whole {
		spans, readings, itemwise = readSpans(text, rd.cache)
	}
	// Characters read differently, or refused, are judged on the text
	// before anything parsed is used: the parse would be of something
	// else. The text rules look at one character at a time (and a CR at
	// the next), and items are cut after a line feed, so a text whose
	// items each pass them passes them: each item's verdict is kept with
	// its reading.
	if !itemwise || !allClean(readings) {
		if fs := checkText(key, text); len(fs) > 0 {
			s.broken = true
			return s, fs
		}
	}
	if itemwise {
		for i, r := range readings {
			if r.depth > maxNesting {
				return s, s.nestedTooDeep(i, spans[i].line-1+r.deepLine, r.depth)
			}
		}
		// The list, where its first "-" is, as goyaml.v3 places it; its
		// items are read from their (cached, shared) shapes, and only an
		// item that is edited gets a tree (entry.own).
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: make([]*yaml.Node, len(spans))}
		seq.Line, seq.Column = firstDash(spans[0].text)
		s.doc, s.seq, s.perItem = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{seq}}, seq, true
		s.items = make([]string, len(spans))
		for i, sp := range spans {
			s.items[i] = sp.text
		}
		return s, s.readEntries(len(spans), func(i int, e *entry) fieldSource {
			e.shape, e.text, e.shift = readings[i].shape, spans[i].text, spans[i].line-1
			return readings[i]
		})
	}
	if fs, done := s.readTree(); done {
		return s, fs
	}
	if fs := s.checkBinary(); len(fs) > 0 {
		return s, fs
	}
	for i, item := range s.seq.Content {
		if depth, line := nesting(item); depth > maxNesting {
			return s, s.nestedTooDeep(i, line, depth)
		}
	}
	if key == KeyMapAccounts {
		return s, s.readAccounts()
	}
	views, fs := s.readAsAuthenticator()
	if fs != nil {
		return s, fs
	}
	return s, s.readEntries(len(views), func(i int, e *entry) fieldSource {
		e.node = s.seq.Content[i]
		e.shape = readShape(e.node)
		return rawFields(views[i])
	})
}

// allClean reports whether every item passed the text rules.
func allClean(readings []*ItemReading) bool {
	for _, r := range readings {
		if !r.clean {
			return false
		}
	}
	return true
}

// fail marks the section broken with one finding.
func (s *section) fail(line int, reason, msg, hint string) Findings {
	s.broken = true
	return Findings{{Severity: SeverityError, Key: s.key, Line: line, Reason: reason, Message: msg, Hint: hint}}
}

// readTree reads the whole text as goyaml.v3 and keeps its top-level list
// in s.seq. done is true when there is nothing more to read: the text is
// not one YAML document holding a list (findings say why) or holds no list
// at all (only comments, or null).
func (s *section) readTree() (fs Findings, done bool) {
	dec := yaml.NewDecoder(strings.NewReader(s.text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return readsAsNothing(s), true // only comments
		}
		return s.fail(errorLine(err), "MalformedYAML",
			fmt.Sprintf("%s is not valid YAML (%s); the authenticator would drop every mapping in it.", s.key, yamlReason(err)),
			"fix the YAML at that line: check indentation, a missing '-', or an unquoted ': '"), true
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil || !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			line = errorLine(err)
		}
		if err != nil || !isEmptyDocument(&next) {
			s.broken = true
			return Findings{multipleDocuments(s.key, s.text, line)}, true
		}
	}
	s.doc = &doc
	root := documentRoot(&doc)
	if root == nil {
		return readsAsNothing(s), true // only comments, or null
	}
	if root.Kind != yaml.SequenceNode {
		want := "a list of mappings (each item starting with '- ')"
		if s.key == KeyMapAccounts {
			want = "a list of 12-digit account IDs"
		}
		return s.fail(root.Line, "NotAList", fmt.Sprintf("%s is not %s.", s.key, want),
			"write each entry as a list item starting with '- '"), true
	}
	s.seq = root
	return nil, false
}

// checkBinary refuses !!binary: it hides a value from everyone who reads
// aws-auth (the authenticator decodes the base64, people see only base64).
func (s *section) checkBinary() Findings {
	var findings Findings
	for i, item := range s.seq.Content {
		if n := findTag(item, "!!binary"); n != nil {
			findings = append(findings, Finding{Severity: SeverityError, Key: s.key, Index: intp(i), Line: n.Line, Reason: "YAMLTag",
				Message: fmt.Sprintf("entry %d holds a base64-encoded value (!!binary): the authenticator decodes it, but nobody reading aws-auth can see what it maps.", i),
				Hint:    "write the value as plain text, without the !!binary tag"})
		}
	}
	if len(findings) > 0 {
		s.broken = true
	}
	return findings
}

// maxNesting is how deep an entry's values may nest. An entry nests three
// levels (the entry, accessPolicies, a policy's namespaces); nobody writes
// 33 by hand, and every level costs memory in every reading (a 1 MiB
// aws-auth of 9,000-deep lists exhausts the chart's memory limit).
const maxNesting = 32

// nesting is how deep a node's values nest (a scalar: 1), and the line of
// the deepest.
func nesting(n *yaml.Node) (depth, line int) {
	depth, line = 1, n.Line
	if n.Kind == yaml.AliasNode {
		return depth, line
	}
	for _, c := range n.Content {
		if d, l := nesting(c); d+1 > depth {
			depth, line = d+1, l
		}
	}
	return depth, line
}

// nestedTooDeep refuses a section with an entry nested past maxNesting.
func (s *section) nestedTooDeep(i, line, depth int) Findings {
	s.broken = true
	return Findings{{Severity: SeverityError, Key: s.key, Index: intp(i), Line: line, Reason: "NestedTooDeep",
		Message: fmt.Sprintf("entry %d nests values %d levels deep; an aws-auth entry needs at most 3 (the entry, accessPolicies, namespaces), and the webhook reads at most %d.", i, depth, maxNesting),
		Hint:    "write the entry as key: value lines with plain values; remove the nested value"}}
}

// readAccounts decodes mapAccounts as the authenticator does: goyaml.v2
// into []string.
func (s *section) readAccounts() Findings {
	if err := yamlv2.Unmarshal([]byte(s.text), &s.accounts); err != nil {
		return s.fail(errorLine(err), "ReadDifferently",
			fmt.Sprintf("the authenticator cannot read mapAccounts (%s): it would load no account from it.", yamlReason(err)),
			"write mapAccounts as a list of quoted 12-digit account IDs")
	}
	return nil
}

// readAsAuthenticator converts the whole text to JSON with YAML 1.1 rules,
// as the authenticator does, and cuts it into one value per item.
func (s *section) readAsAuthenticator() ([]json.RawMessage, Findings) {
	js, err := sigsyaml.YAMLToJSON([]byte(s.text))
	if err != nil {
		if f, ok := unconvertibleNumber(s.key, s.seq); ok {
			s.broken = true
			return nil, Findings{f}
		}
		return nil, s.fail(errorLine(err), "ReadDifferently",
			fmt.Sprintf("the authenticator cannot read %s (%s); it would drop every mapping in it.", s.key, yamlReason(err)),
			"simplify the YAML: plain lists of mappings, no anchors or tags")
	}
	items, err := jsonArray(js)
	if err != nil || len(items) != len(s.seq.Content) {
		return nil, s.fail(s.seq.Line, "ReadDifferently",
			fmt.Sprintf("the authenticator reads %s differently from how it is written (%d entries written, %d read).", s.key, len(s.seq.Content), len(items)),
			"simplify the YAML: plain lists of mappings, no anchors, aliases or merge keys")
	}
	return items, nil
}

// readEntries builds each of the n entries from its item (item(i)) and its
// reading by the authenticator. A section whose entries already hold
// MaxFindings problems is not read further: it is refused whatever the
// rest holds, and reading on costs memory and time in proportion to a
// hostile document, for findings nobody will read.
func (s *section) readEntries(n int, item func(i int, e *entry) fieldSource) Findings {
	var findings Findings
	s.entries = make([]*entry, 0, n)
	for i := range n {
		if len(findings) >= MaxFindings {
			s.broken = true
			return append(findings, Finding{Severity: SeverityError, Key: s.key, Index: intp(i), Line: s.entries[i-1].line(""), Reason: "TooManyProblems",
				Message: fmt.Sprintf("%s holds at least %d problems in its first %d of %d entries; the rest was not checked.", s.key, len(findings), i, n),
				Hint:    "fix the problems listed, then save again"})
		}
		e := &entry{key: s.key, index: i}
		fields := item(i, e)
		s.entries = append(s.entries, e)
		findings = append(findings, e.read(fields)...)
	}
	return findings
}

// read fills the entry in from its shape and its fields as the
// authenticator reads them, and returns what is wrong with its shape.
func (e *entry) read(src fieldSource) Findings {
	key, i, sh := e.key, e.index, e.shape
	switch {
	case sh.kind == yaml.ScalarNode && sh.null:
		return Findings{{Severity: SeverityError, Key: key, Index: intp(i), Line: e.at(sh.itemLine),
			Reason: "EmptyEntry", Message: fmt.Sprintf("entry %d is empty: the authenticator skips it (an entry needs a %s) and reports %s as broken.", i, arnField(key), key),
			Hint: "remove the empty '- ' line or fill the entry in"}}
	case sh.kind != yaml.MappingNode:
		return Findings{{Severity: SeverityError, Key: key, Index: intp(i), Line: e.at(sh.itemLine),
			Reason: "NotAMapping", Message: fmt.Sprintf("entry %d is not a mapping of key: value lines: the authenticator cannot read it as an entry, skips it and reports %s as broken.", i, key),
			Hint: "write the entry as 'key: value' lines under its '- '"}}
	case len(sh.pairs) == 0:
		// Reported here rather than in validation, so that a list of
		// 200,000 `- {}` stops being read at MaxFindings.
		return Findings{{Severity: SeverityError, Key: key, Index: intp(i), Line: e.at(sh.itemLine), Reason: "EmptyEntry",
			Message: fmt.Sprintf("the entry is empty: the authenticator skips it (an entry needs a %s) and reports %s as broken.", arnField(key), key),
			Hint:    "remove the empty '- ' item or fill it in"}}
	}
	e.isMapping = true
	var findings Findings
	for j := range sh.pairs {
		p := &sh.pairs[j]
		switch {
		case p.merge:
			// The authenticator merges the fields in, but every check,
			// message and edit here is about the entry as written: a
			// merged permissionset or path could not be resolved in
			// place, and would change every entry sharing the anchor.
			findings = append(findings, Finding{Severity: SeverityError, Key: key, Index: intp(i), Line: e.at(p.keyLine), Reason: "MergeKey",
				Message: fmt.Sprintf("entry %d takes fields from elsewhere through a YAML merge key (<<); the webhook checks and edits each entry where it is written and cannot vouch for merged fields.", i),
				Hint:    "write the fields out in the entry itself instead of '<<: *anchor'"})
			continue
		case p.keyKind != yaml.ScalarNode:
			continue
		}
		if first, at := sh.pair(p.folded); at != j {
			if first.key == p.key { // other spellings: DuplicateField in validation
				findings = append(findings, repeatedKey(key, i, p.key, e.at(first.keyLine), e.at(p.keyLine)))
			}
			continue
		}
		if p.valKind == yaml.AliasNode && (p.folded == fieldRoleARN || p.folded == fieldUserARN || p.folded == fieldPermissionSet) {
			// These are the values the webhook rewrites in place; an
			// alias cannot be rewritten for this entry alone.
			findings = append(findings, Finding{Severity: SeverityError, Key: key, Index: intp(i), Field: p.folded, Line: e.at(p.valLine), Reason: "YAMLAlias",
				Message: fmt.Sprintf("%s is a YAML alias (*%s); the webhook resolves and rewrites %s where it is written, so it must be written out.", p.key, p.value, p.folded),
				Hint:    fmt.Sprintf("write the value of %s out instead of *%s", p.key, p.value)})
		}
	}
	fields := src.fields()
	if fields == nil {
		return findings // not an object: reported above through the v3 kind check
	}
	e.view, e.written, e.strs, e.fields = fields.view, fields.written, fields.strs, fields
	for j := range findings {
		findings[j].Entry = e.label()
	}
	return findings
}

// fieldView is an entry as the authenticator decodes it, by lowercased
// key: view holds each field's JSON, written every spelling seen per
// lowercased key, strs the fields that are JSON strings, decoded. It
// depends on the entry's JSON alone, so an item read on its own computes
// it once (ItemReading.fields) and every entry read from that item shares
// it: nothing changes it after it is made.
type fieldView struct {
	view    map[string]json.RawMessage
	written map[string][]string
	strs    map[string]string

	// passed remembers that the entry rules (validator.checkEntry) found
	// nothing, and the identity key they returned, per data key and lint
	// mode: they read nothing but the fields, so an item that passed once
	// passes every time, and an unchanged item of an edited aws-auth is
	// not judged again. Only a pass is kept (a finding names the entry's
	// place, which the next document may change).
	passed [2][2]atomic.Pointer[string]

	// groupsOnce makes groups: the groups field decoded, shared.
	groupsOnce sync.Once
	groups     []string
}

// groupList is the groups field as a list of strings (nil when it is
// missing or not such a list), decoded once and shared by every Result
// that holds the entry: never changed, and full, so that an append copies.
func (f *fieldView) groupList() []string {
	f.groupsOnce.Do(func() {
		if raw, ok := f.view[fieldGroups]; ok {
			g, _ := jsonStrings(raw)
			f.groups = g[:len(g):len(g)]
		}
	})
	return f.groups
}

// groups is the entry's groups (fieldView.groupList).
func (e *entry) groups() []string {
	if e.fields == nil {
		return nil
	}
	return e.fields.groupList()
}

// fieldSource gives an entry's fieldView, made when first asked for: an
// entry that is not a mapping never needs it.
type fieldSource interface{ fields() *fieldView }

// rawFields is an entry's JSON, read when asked.
type rawFields json.RawMessage

func (r rawFields) fields() *fieldView { return readFieldView(json.RawMessage(r)) }

// readFieldView reads an entry's JSON; nil when it is not an object or an
// empty one.
func readFieldView(raw json.RawMessage) *fieldView {
	obj, err := jsonObject(raw)
	if err != nil || len(obj) == 0 {
		return nil
	}
	// In the order encoding/json applies them (the JSON has its keys
	// sorted): a later spelling of a field wins, unless it is null, which
	// leaves a string field alone.
	f := &fieldView{view: make(map[string]json.RawMessage, len(obj)), written: make(map[string][]string, len(obj))}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := foldKey(k)
		if _, set := f.view[lk]; !set || string(obj[k]) != "null" {
			f.view[lk] = obj[k]
		}
		f.written[lk] = append(f.written[lk], k)
	}
	f.strs = make(map[string]string, len(f.view))
	for k, raw := range f.view {
		if v, ok := jsonString(raw); ok {
			f.strs[k] = v
		}
	}
	return f
}

// yamlReason is a YAML parser error without its "yaml: line N:" prefix:
// the finding's line says where, as a line of the data key.
func yamlReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	return yamlLinePrefix.ReplaceAllString(msg, "")
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// documentMarker matches a line that starts or ends a YAML document.
var documentMarker = regexp.MustCompile(`(?m)^(---|\.\.\.)([ \t].*)?\r?$`)

// multipleDocuments is the finding for a key holding a second YAML
// document; it names the marker that ends the first (a '---' that starts
// the next, or a '...' that ends this one) and where it is.
func multipleDocuments(key, text string, nextLine int) Finding {
	marker, line := "---", nextLine
	content := false
	for n, l := range strings.Split(text, "\n") {
		m := documentMarker.FindStringSubmatch(l)
		if m == nil {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "%") {
				content = true
			}
			continue
		}
		if content || m[1] == "..." {
			marker, line = m[1], n+1
			break
		}
	}
	what := "starts a second document"
	if marker == "..." {
		what = "ends the document"
	}
	return Finding{Severity: SeverityError, Key: key, Line: line, Reason: "MultipleDocuments",
		Message: fmt.Sprintf("the '%s' on line %d of %s %s: the authenticator reads only the first YAML document and ignores everything after that line.", marker, line, key, what),
		Hint:    fmt.Sprintf("remove the '%s' line (or move what follows it above it)", marker)}
}

// yaml11NotANumber matches what YAML 1.1 reads as infinity or NaN; JSON
// has no such numbers, so the authenticator cannot convert the key at all.
var yaml11NotANumber = regexp.MustCompile(`^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)

// unconvertibleNumber finds a plain .inf or .nan in a key and says which
// entry and field hold it.
func unconvertibleNumber(key string, root *yaml.Node) (Finding, bool) {
	for i, item := range root.Content {
		var hit, field *yaml.Node
		var walk func(n, k *yaml.Node)
		walk = func(n, k *yaml.Node) {
			if hit != nil || n == nil || n.Kind == yaml.AliasNode {
				return
			}
			if n.Kind == yaml.ScalarNode && n.Style == 0 && n.Tag != "!!str" && yaml11NotANumber.MatchString(n.Value) {
				hit, field = n, k
				return
			}
			for j, c := range n.Content {
				if n.Kind == yaml.MappingNode && j%2 == 1 {
					walk(c, n.Content[j-1])
				} else {
					walk(c, k)
				}
			}
		}
		walk(item, nil)
		if hit == nil {
			continue
		}
		name := "a value"
		f := Finding{Severity: SeverityError, Key: key, Index: intp(i), Line: hit.Line, Reason: "WrongType"}
		if field != nil {
			name, f.Field = field.Value, foldKey(field.Value)
		}
		f.Message = fmt.Sprintf("%s is %s, which the authenticator's YAML 1.1 reads as a number (infinity or not-a-number) that JSON cannot hold: it cannot read %s at all and would drop every mapping in it.", name, hit.Value, key)
		f.Hint = fmt.Sprintf("put the value in quotes: %q", hit.Value)
		return f, true
	}
	return Finding{}, false
}

// repeatedKey is the finding for a key written twice in one entry. Most
// often a '- ' went missing and two entries ran into one: the hint says
// that first.
func repeatedKey(key string, index int, field string, firstLine, againLine int) Finding {
	return Finding{Severity: SeverityError, Key: key, Index: intp(index), Field: field, Line: againLine, Reason: "DuplicateField",
		Message: fmt.Sprintf("the key %q appears twice in entry %d (lines %d and %d of %s); the authenticator silently keeps only the last one.", field, index, firstLine, againLine, key),
		Hint: fmt.Sprintf("if line %d of %s starts another entry, put '- ' in front of it, at the indentation of the other entries' '- '; otherwise keep only one %q",
			againLine, key, field)}
}

// readsAsNothing checks that the authenticator, too, reads a section that
// holds no list (only comments, or null) as no mappings: a lone tag such as
// `!` is null to goyaml.v3 but a broken value to the authenticator.
func readsAsNothing(s *section) Findings {
	var err error
	if s.key == KeyMapAccounts {
		var accounts []string
		if err = yamlv2.Unmarshal([]byte(s.text), &accounts); err == nil && len(accounts) > 0 {
			err = fmt.Errorf("it reads %d account(s)", len(accounts))
		}
	} else {
		var js []byte
		if js, err = sigsyaml.YAMLToJSON([]byte(s.text)); err == nil && strings.TrimSpace(string(js)) != "null" {
			err = fmt.Errorf("it reads %s", js)
		}
	}
	if err == nil {
		return nil
	}
	s.broken = true
	return Findings{{Severity: SeverityError, Key: s.key, Line: errorLine(err), Reason: "ReadDifferently",
		Message: fmt.Sprintf("%s holds no list, but the authenticator does not read it as empty: %v.", s.key, err),
		Hint:    fmt.Sprintf("leave %s empty, or write its entries as a list", s.key)}}
}

// documentRoot returns the content of a document node, or nil for an empty
// or null document.
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return root
}

func isEmptyDocument(doc *yaml.Node) bool { return documentRoot(doc) == nil }

func intp(i int) *int { return &i }

// encodeNode renders a node tree with goyaml.v3: the fallback when an edit
// cannot be spliced into the original text.
func encodeNode(n *yaml.Node) (string, error) {
	spellNulls(n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// spellNulls writes out null scalars that were written empty (`key:`): the
// goyaml.v3 encoder renders an empty null in a flow mapping as a quoted
// empty string, which the authenticator reads differently.
func spellNulls(n *yaml.Node) {
	if n == nil || n.Kind == yaml.AliasNode {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Value == "" && n.ShortTag() == "!!null" {
		n.Value = "null"
	}
	for _, c := range n.Content {
		spellNulls(c)
	}
}
