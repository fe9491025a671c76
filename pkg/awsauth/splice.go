package awsauth

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/splice"
)

// editor changes one section. Every change is made twice: on the node tree
// (the truth about what the result must mean) and, where it can be, as a
// splice into the original text, so that everything the user wrote —
// comments, blank lines, quoting, indentation — stays byte for byte. The
// spliced text is re-parsed and must mean exactly the edited tree; if it
// does not (an exotic layout), the tree is encoded with goyaml.v3 instead,
// which keeps comments but may reflow whitespace.
type editor struct {
	sec  *section
	doc  *yaml.Node // document node being edited
	seq  *yaml.Node // top-level sequence being edited
	text *splice.Text
	// spliceable turns false once a change cannot be expressed as a splice.
	spliceable bool
	changed    bool
	// spliced is the applied splice, once result has made it; its lines
	// map back onto the lines the user wrote.
	spliced *splice.Result
}

func newEditor(s *section, doc *yaml.Node) *editor {
	return &editor{sec: s, doc: doc, seq: s.seq, text: splice.New(s.text), spliceable: true}
}

// inFlow reports whether a mapping item sits in a flow collection.
func (ed *editor) inFlow(item *yaml.Node) bool {
	return ed.seq.Style&yaml.FlowStyle != 0 || item.Style&yaml.FlowStyle != 0
}

// setScalar changes a scalar's value.
func (ed *editor) setScalar(item, n *yaml.Node, value string) {
	if n.Value == value {
		return
	}
	ed.changed = true
	if ed.spliceable {
		start, end, ok := ed.text.ScalarExtent(n, ed.inFlow(item))
		text, okq := splice.QuoteLike(n.Style, value, ed.inFlow(item))
		if ok && okq {
			ed.text.Replace(start, end, text)
		} else {
			ed.spliceable = false
		}
	}
	n.Value = value
	n.Tag = "!!str"
}

// insertField adds `key: value` to a mapping, just before the key node
// `before`, at the same indentation.
func (ed *editor) insertField(item, before *yaml.Node, key, value string) {
	ed.changed = true
	if ed.spliceable {
		ed.spliceable = false
		if before.Style == 0 && before.Anchor == "" {
			if at, ok := ed.text.Offset(before.Line, before.Column); ok && strings.HasPrefix(ed.sec.text[at:], before.Value) {
				v, _ := splice.QuoteLike(0, value, ed.inFlow(item))
				text := key + ": " + v + ed.text.EOL() + strings.Repeat(" ", before.Column-1)
				if ed.inFlow(item) {
					text = key + ": " + v + ", "
				}
				ed.text.Insert(at, text)
				ed.spliceable = true
			}
		}
	}
	pos := len(item.Content)
	for i := 0; i < len(item.Content); i += 2 {
		if item.Content[i] == before {
			pos = i
		}
	}
	pair := []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: value},
	}
	item.Content = append(item.Content[:pos], append(pair, item.Content[pos:]...)...)
}

// appendNodeRoleEntry adds the entry a node role needs, after the last
// entry, indented like the first one.
func (ed *editor) appendNodeRoleEntry(roleARN string) {
	ed.changed = true
	item := nodeRoleEntry(roleARN)
	text := ed.sec.text
	if ed.seq == nil {
		// Empty key: start a fresh list after any comments; `` and "" go.
		ed.seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		ed.doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{ed.seq}}
		start := len(text)
		if t := strings.TrimSpace(text); t == "``" || t == `""` || t == "''" {
			start, text = 0, ""
		}
		ed.text.Replace(start, len(ed.sec.text), ed.entryText(text, 1, 3, roleARN))
	} else if ed.spliceable {
		dash, ok := ed.text.Offset(ed.seq.Line, ed.seq.Column)
		keyCol := ed.seq.Column + 2
		if kind, line, col, ok := ed.firstItem(); ok && kind == yaml.MappingNode && line == ed.seq.Line {
			keyCol = col
		}
		if ok && ed.seq.Style&yaml.FlowStyle == 0 && text[dash] == '-' && keyCol >= ed.seq.Column+2 {
			ed.text.Insert(len(text), ed.entryText(text, ed.seq.Column, keyCol, roleARN))
		} else {
			ed.spliceable = false
		}
	}
	ed.seq.Content = append(ed.seq.Content, item)
}

// firstItem is the kind and position of the list's first item: from its
// tree, or from its entry's shape when it has none (read on its own, not
// edited).
func (ed *editor) firstItem() (kind yaml.Kind, line, col int, ok bool) {
	if len(ed.seq.Content) == 0 {
		return 0, 0, 0, false
	}
	if n := ed.seq.Content[0]; n != nil {
		return n.Kind, n.Line, n.Column, true
	}
	e := ed.sec.entries[0]
	return e.shape.kind, e.at(e.shape.line), e.shape.column, true
}

// entryText renders a node-role entry to follow text, its '-' at dashCol
// and its keys at keyCol.
func (ed *editor) entryText(text string, dashCol, keyCol int, roleARN string) string {
	var b strings.Builder
	if text != "" && !strings.HasSuffix(text, "\n") {
		b.WriteString(ed.text.EOL())
	}
	pad := strings.Repeat(" ", keyCol-1)
	b.WriteString(strings.Repeat(" ", dashCol-1) + "-" + strings.Repeat(" ", keyCol-dashCol-1))
	for _, line := range []string{
		"rolearn: " + roleARN,
		pad + "username: " + NodeUsername,
		pad + "groups:",
		pad + "  - " + NodeGroups[0],
		pad + "  - " + NodeGroups[1],
	} {
		b.WriteString(line + ed.text.EOL())
	}
	return b.String()
}

// NodeUsername and NodeGroups are what a node role must be mapped to.
const NodeUsername = "system:node:{{EC2PrivateDNSName}}"

var NodeGroups = []string{"system:bootstrappers", "system:nodes"}

func nodeRoleEntry(roleARN string) *yaml.Node {
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	groups := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, g := range NodeGroups {
		groups.Content = append(groups.Content, str(g))
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		str("rolearn"), str(roleARN),
		str("username"), str(NodeUsername),
		str("groups"), groups,
	}}
}

// originalLine maps a line of the result back onto the text the user wrote
// (a spliced-in line maps onto the line it was put before), given whether
// the result is the splice. A re-encoded result has no such mapping: 0.
func (ed *editor) originalLine(spliced bool) func(int) int {
	if !spliced || ed.spliced == nil {
		return func(int) int { return 0 }
	}
	return ed.spliced.OriginalLine
}

// result returns the section's new text — the spliced original when it
// means exactly the edited tree, else the tree encoded — together with that
// text read back: the one parse answers both whether the text means what was
// intended and what the validator sees, so the text is not parsed twice.
func (ed *editor) result() (string, *section, func(int) int, error) {
	if ed.spliceable {
		// Overlapping edits are refused: never guess.
		if r, err := ed.text.Apply(); err == nil {
			if s, ok := ed.readBack(r.Text); ok {
				ed.spliced = r
				return r.Text, s, ed.originalLine(true), nil
			}
		}
	}
	if ed.sec.perItem {
		return "", nil, nil, errReadWhole // the tree lacks the comments between items
	}
	out, err := encodeNode(ed.doc)
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode %s: %w", ed.sec.key, err)
	}
	s, ok := ed.readBack(out)
	if !ok {
		return "", nil, nil, fmt.Errorf("internal error: the rewritten %s does not read back as intended", ed.sec.key)
	}
	return out, s, ed.originalLine(false), nil
}

// readBack parses text as a section and reports whether it means exactly
// the edited tree (see meansSame).
func (ed *editor) readBack(text string) (*section, bool) {
	s, findings := parseSection(ed.sec.key, text, ed.sec.reading)
	s.findings = findings
	if s.doc != nil {
		return s, ed.sameList(s)
	}
	// parseSection stopped before it kept a tree (the text is not UTF-8,
	// holds a second document, ...): ask the YAML parser alone, as before,
	// and let the section's findings say what is wrong.
	return s, meansSame(text, ed.fullList())
}

// sameList reports whether the section read back holds the edited list.
// Items read on their own have trees only where edited: an item that is
// not edited on either side is the same when its text is the same (a
// reading is a function of the text); the others are compared as trees.
func (ed *editor) sameList(got *section) bool {
	root := documentRoot(got.doc)
	if !got.perItem && !ed.sec.perItem {
		return sameTree(root, ed.seq)
	}
	want := ed.seq
	if root == nil || want == nil {
		return root == want
	}
	if root.Kind != want.Kind || root.ShortTag() != want.ShortTag() || len(root.Content) != len(want.Content) {
		return false
	}
	for i, w := range want.Content {
		g := root.Content[i]
		if g == nil && w == nil && got.items[i] == ed.sec.items[i] {
			continue
		}
		if g == nil {
			_, g = readItem(got.items[i])
		}
		if w == nil {
			w = ed.itemTree(i)
		}
		if g == nil || w == nil || !sameTree(g, w) {
			return false
		}
	}
	return true
}

// itemTree is item i of the edited list as a tree: read again from its
// text when it was read on its own and not edited.
func (ed *editor) itemTree(i int) *yaml.Node {
	if n := ed.seq.Content[i]; n != nil {
		return n
	}
	_, n := readItem(ed.sec.items[i])
	return n
}

// fullList is the edited list with every item as a tree.
func (ed *editor) fullList() *yaml.Node {
	if ed.seq == nil || !ed.sec.perItem {
		return ed.seq
	}
	full := *ed.seq
	full.Content = make([]*yaml.Node, len(ed.seq.Content))
	for i := range full.Content {
		full.Content[i] = ed.itemTree(i)
	}
	return &full
}

// meansSame reports whether text parses to a tree with the same structure,
// tags and values as want (comments, styles and positions aside).
func meansSame(text string, want *yaml.Node) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return false
	}
	return sameTree(documentRoot(&doc), want)
}

func sameTree(a, b *yaml.Node) bool {
	if a == b {
		return true // one tree: an item's cached reading, shared
	}
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind == yaml.AliasNode || b.Kind == yaml.AliasNode {
		return a.Kind == b.Kind && sameTree(a.Alias, b.Alias)
	}
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || len(a.Content) != len(b.Content) {
		return false
	}
	if a.Kind == yaml.ScalarNode && a.Value != b.Value && a.ShortTag() != "!!null" { // null is null however written
		return false
	}
	for i := range a.Content {
		if !sameTree(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}
