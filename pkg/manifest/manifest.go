// Package manifest reads a ConfigMap manifest (YAML or JSON, as kubectl
// prints it) and writes changed data keys back into the same text, leaving
// every other byte — metadata, comments, other keys — as it was.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/splice"
)

// ConfigMap is a parsed ConfigMap manifest.
type ConfigMap struct {
	Name, Namespace string
	Data            map[string]string
	// BinaryDataBytes counts toward the ConfigMap size limit.
	BinaryDataBytes int

	text string
	doc  *yaml.Node
	// values holds the node of each data value, for splicing.
	values map[string]*yaml.Node
	data   *yaml.Node
}

// Parse reads one ConfigMap manifest. It refuses a manifest that kubectl
// would read differently from how it reads here (and from how people see
// it): several YAML documents, a key written twice in one mapping (kubectl
// keeps the last, a reader sees the first), or data that sigs.k8s.io/yaml —
// what kubectl converts a manifest with — reads otherwise.
func Parse(raw []byte) (*ConfigMap, error) {
	if err := plainText(raw); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("the manifest is not valid YAML: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			return nil, fmt.Errorf("the manifest holds more than one YAML document, and the second is not valid YAML: %w", err)
		}
		if next.Kind != yaml.DocumentNode || len(next.Content) > 0 && next.Content[0].ShortTag() != "!!null" {
			return nil, fmt.Errorf("line %d: the manifest holds more than one YAML document ('---'); kubectl applies every one of them, lint and render read one ConfigMap. Fix: put aws-auth alone in the file", line)
		}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the manifest is not a ConfigMap object (expected a mapping with kind: ConfigMap)")
	}
	cm := &ConfigMap{text: string(raw), doc: &doc, Data: map[string]string{}, values: map[string]*yaml.Node{}}
	root := doc.Content[0]
	if err := knownKeys(root, "", configMapFields); err != nil {
		return nil, err
	}
	if err := knownKeys(lookup(root, "metadata"), "metadata.", []string{"name", "namespace"}); err != nil {
		return nil, err
	}
	if err := noRepeatedKeys(&doc, "", map[*yaml.Node]bool{}); err != nil {
		return nil, err
	}
	if kind := lookup(root, "kind"); kind == nil || kind.Value != "ConfigMap" {
		got := "nothing"
		if kind != nil {
			got = kind.Value
		}
		return nil, fmt.Errorf("the manifest has kind %s; expected ConfigMap (get it with: kubectl get configmap aws-auth -n kube-system -o yaml)", got)
	}
	if md := lookup(root, "metadata"); md != nil {
		if n := lookup(md, "name"); n != nil {
			cm.Name = n.Value
		}
		if n := lookup(md, "namespace"); n != nil {
			cm.Namespace = n.Value
		}
	}
	if bd := lookup(root, "binaryData"); bd != nil && bd.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(bd.Content); i += 2 {
			cm.BinaryDataBytes += len(bd.Content[i].Value) + len(bd.Content[i+1].Value)*3/4
		}
	}
	cm.data = lookup(root, "data")
	if cm.data == nil || cm.data.ShortTag() == "!!null" {
		return cm, nil
	}
	if cm.data.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: data is not a mapping of keys to strings", cm.data.Line)
	}
	for i := 0; i+1 < len(cm.data.Content); i += 2 {
		k, v := cm.data.Content[i], cm.data.Content[i+1]
		switch {
		case k.ShortTag() == "!!merge":
			return nil, fmt.Errorf("line %d: data takes keys from elsewhere through a YAML merge key (<<); write each data key out", k.Line)
		case v.Kind == yaml.AliasNode:
			return nil, fmt.Errorf("line %d: data.%s is a YAML alias (*%s); write the value out", v.Line, k.Value, v.Value)
		case v.Kind == yaml.ScalarNode && v.Tag != "" && v.Tag != "!" && v.ShortTag() != "!!str" && v.ShortTag() != "!!null" && v.Style&yaml.TaggedStyle != 0:
			return nil, fmt.Errorf("line %d: data.%s has the tag %s; kubectl and the apiserver take only plain strings. Fix: remove the tag and write the text as a '|' block", v.Line, k.Value, v.Tag)
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" && v.ShortTag() != "!!null" {
			hint := ""
			if v.Kind == yaml.SequenceNode || v.Kind == yaml.MappingNode {
				hint = fmt.Sprintf(" (did you forget the '|' after '%s:'?)", k.Value)
			}
			return nil, fmt.Errorf("line %d: data.%s must be a string; the apiserver refuses anything else%s", v.Line, k.Value, hint)
		}
		cm.Data[k.Value] = v.Value
		cm.values[k.Value] = v
	}
	if err := sameForKubectl(raw, cm.Data); err != nil {
		return nil, err
	}
	return cm, nil
}

// plainText refuses what readers of the manifest see differently from the
// YAML parsers (charcheck.ScanText): a hidden line break turns the text of
// a '|' block into something else than what is shown, a bidirectional
// control reorders a line.
func plainText(raw []byte) error {
	for _, p := range charcheck.ScanText(string(raw)) {
		switch p.Kind {
		case charcheck.TextInvalidUTF8:
			return fmt.Errorf("line %d: the manifest holds a byte (0x%02X) that is not UTF-8. Fix: save the file as UTF-8", p.Line, p.Rune)
		case charcheck.TextLineBreak:
			return fmt.Errorf("line %d: the manifest holds %s, which YAML parsers read as a line break while editors show none (what is shown is not what kubectl sends). Fix: replace it with a plain line break, or delete it", p.Line, charcheck.Describe(p.Rune))
		case charcheck.TextRefused:
			return fmt.Errorf("line %d: the manifest holds %s, which YAML parsers refuse. Fix: delete the character", p.Line, charcheck.Describe(p.Rune))
		case charcheck.TextBidi:
			return fmt.Errorf("line %d: the manifest holds %s, a bidirectional control that changes the order in which the line is shown. Fix: delete the character", p.Line, charcheck.Describe(p.Rune))
		}
	}
	return nil
}

// configMapFields are the top-level fields of a ConfigMap.
var configMapFields = []string{"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}

// knownKeys refuses a key that is a near miss of one of fields (a
// misspelt, look-alike or invisible-character "data", say): kubectl would
// refuse it as an unknown field, or the ConfigMap would lose what is under
// it. With fields the whole set (the top level), any other key is refused
// too, as kubectl's strict field validation does.
func knownKeys(m *yaml.Node, prefix string, fields []string) error {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	all := prefix == ""
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode || slices.Contains(fields, k.Value) {
			continue
		}
		holds := ""
		if p := charcheck.Value(k.Value); p != nil {
			holds = " (it holds " + p.Msg + ")"
		}
		if near := charcheck.Near(k.Value, fields); near != "" {
			return fmt.Errorf("line %d: %s%q%s is not a ConfigMap field. Fix: did you mean %s%s?", k.Line, prefix, k.Value, holds, prefix, near)
		}
		if all || holds != "" {
			return fmt.Errorf("line %d: %s%q%s is not a ConfigMap field (a ConfigMap has %s); kubectl refuses unknown fields. Fix: remove it", k.Line, prefix, k.Value, holds, strings.Join(fields, ", "))
		}
	}
	return nil
}

// noRepeatedKeys refuses a key written twice in one mapping, anywhere in
// the manifest: kubectl (sigs.k8s.io/yaml) keeps the last, while people —
// and the first match a reader finds — see the first. Two data: keys, two
// mapRoles: under data:, two names under metadata:, all read so. It also
// refuses a key that holds an invisible or look-alike character
// (charcheck.Value): one in an indentation makes part of a '|' block a key
// of its own.
func noRepeatedKeys(n *yaml.Node, path string, seen map[*yaml.Node]bool) error {
	if n == nil || seen[n] {
		return nil
	}
	seen[n] = true
	if n.Kind == yaml.MappingNode {
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.ShortTag() != "!!merge" {
				where := strings.TrimPrefix(path+"."+k.Value, ".")
				if p := charcheck.Value(k.Value); p != nil {
					return fmt.Errorf("line %d: the key %q holds %s; where YAML syntax belongs (an indentation, a ':') such a character makes the lines around it mean something else than they look. Fix: %s", k.Line, where, p.Msg, p.Hint)
				}
				if prev, dup := first[k.Value]; dup {
					return fmt.Errorf("line %d: %s: is written twice (lines %d and %d); kubectl keeps only the last one, while lint, render and people reading the file see the first. Fix: merge the two into one", k.Line, where, prev.Line, k.Line)
				}
				first[k.Value] = k
			}
			if err := noRepeatedKeys(n.Content[i+1], strings.TrimPrefix(path+"."+k.Value, "."), seen); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range n.Content {
		if err := noRepeatedKeys(c, path, seen); err != nil {
			return err
		}
	}
	return nil
}

// sameForKubectl checks that kubectl, which converts the manifest with
// sigs.k8s.io/yaml (YAML 1.1, goyaml.v2) before sending it, sends exactly
// the data read here.
func sameForKubectl(raw []byte, data map[string]string) error {
	js, err := sigsyaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("kubectl cannot read the manifest (%w); fix the YAML", err)
	}
	var sent struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(js, &sent); err != nil {
		return fmt.Errorf("kubectl reads data differently: %w; write each data value as a string", err)
	}
	for k, v := range data {
		if got, ok := sent.Data[k]; !ok || got != v {
			return fmt.Errorf("kubectl reads data.%s differently from how it is written here (YAML 1.1 and 1.2 disagree about its text); write it as a '|' block of plain text", k)
		}
	}
	for k := range sent.Data {
		if _, ok := data[k]; !ok {
			return fmt.Errorf("kubectl reads a data key %q that is not written as one here; write each data key out as a plain string", k)
		}
	}
	return nil
}

// LineOf maps a line of a data value onto the manifest file: line 1 of a
// value written as a literal block ('|') is the file line after its key.
// ok is false when the value is written otherwise (quoted, folded), where
// its lines are not the file's.
func (cm *ConfigMap) LineOf(key string, line int) (int, bool) {
	n := cm.values[key]
	if n == nil || n.Style != yaml.LiteralStyle || line < 1 {
		return 0, false
	}
	return n.Line + line, true
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// WithData returns the manifest text with the given data keys set. Each
// changed value is spliced in as a literal block (or a double-quoted string
// where the original was one); the result is read back and must hold exactly the
// new data, else the manifest is re-encoded as a whole.
func (cm *ConfigMap) WithData(changes map[string]string) ([]byte, error) {
	if len(changes) == 0 {
		return []byte(cm.text), nil
	}
	want := map[string]string{}
	for k, v := range cm.Data {
		want[k] = v
	}
	for k, v := range changes {
		want[k] = v
	}
	if out, ok := cm.splice(changes); ok && holds(out, want) {
		return []byte(out), nil
	}
	// Fallback: edit the tree and encode it.
	root := cm.doc.Content[0]
	if cm.data == nil || cm.data.Kind != yaml.MappingNode {
		cm.data = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "data"}, cm.data)
	}
	for k, v := range changes {
		if n := cm.values[k]; n != nil {
			n.Value, n.Tag, n.Style = v, "!!str", yaml.LiteralStyle
			continue
		}
		cm.data.Content = append(cm.data.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.LiteralStyle})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cm.doc); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if !holds(string(out), want) {
		return nil, fmt.Errorf("internal error: the rewritten manifest does not read back as intended")
	}
	return out, nil
}

// splice replaces each changed value's text in place; new keys go after
// the last data key. It reports false when the layout is one it does not
// handle.
func (cm *ConfigMap) splice(changes map[string]string) (string, bool) {
	if cm.data == nil || cm.data.Kind != yaml.MappingNode || cm.data.Style&yaml.FlowStyle != 0 || len(cm.data.Content) == 0 {
		return "", false
	}
	text := splice.New(cm.text)
	keyCol := cm.data.Content[0].Column
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var added strings.Builder
	for _, k := range keys {
		v := changes[k]
		n := cm.values[k]
		if n == nil {
			added.WriteString(strings.Repeat(" ", keyCol-1) + k + ": " + block(v, keyCol+2) + "\n")
			continue
		}
		start, end, ok := valueExtent(text, n, keyCol)
		if !ok {
			return "", false
		}
		var repl string
		switch n.Style {
		case yaml.DoubleQuotedStyle:
			repl, _ = splice.QuoteLike(n.Style, v, false)
		case yaml.LiteralStyle, yaml.FoldedStyle:
			repl = block(v, keyCol+2) + "\n" // the block's extent took its last line end
		default:
			// A block in place of a plain or single-quoted value must be
			// the last thing on its line; it would swallow a comment.
			rest, _, _ := strings.Cut(cm.text[end:], "\n")
			if strings.TrimSpace(rest) != "" {
				return "", false
			}
			repl = block(v, keyCol+2)
		}
		text.Replace(start, end, repl)
	}
	if added.Len() > 0 {
		// New keys go after the last value of data, on their own lines.
		last := cm.data.Content[len(cm.data.Content)-1]
		_, end, ok := valueExtent(text, last, keyCol)
		if !ok {
			return "", false
		}
		if nl := strings.IndexByte(cm.text[end:], '\n'); nl >= 0 && (end == 0 || cm.text[end-1] != '\n') {
			end += nl + 1
		} else if nl < 0 && !strings.HasSuffix(cm.text, "\n") {
			return "", false
		}
		text.Insert(end, added.String())
	}
	r, err := text.Apply()
	if err != nil {
		return "", false
	}
	return r.Text, true
}

// valueExtent finds the bytes of a data value: a literal or folded block
// with its last line end, a quoted or plain scalar as written.
func valueExtent(text *splice.Text, n *yaml.Node, keyCol int) (int, int, bool) {
	if n.Style == yaml.LiteralStyle || n.Style == yaml.FoldedStyle {
		return text.BlockExtent(n, keyCol-1)
	}
	return text.ScalarExtent(n, false)
}

// block renders a value as a literal block scalar whose lines are indented
// to col (1-based).
func block(v string, col int) string {
	if v == "" {
		return `""`
	}
	header := "|"
	if strings.HasPrefix(v, " ") || strings.HasPrefix(v, "\n") {
		header += "2" // the content's own leading spaces must not set the indent
	}
	switch {
	case !strings.HasSuffix(v, "\n"):
		header += "-"
	case strings.HasSuffix(v, "\n\n"):
		header += "+"
	}
	pad := strings.Repeat(" ", col-1)
	var b strings.Builder
	b.WriteString(header + "\n")
	body := strings.TrimSuffix(v, "\n")
	for _, line := range strings.Split(body, "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(pad + line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// holds reports whether text parses to a ConfigMap with exactly this data.
func holds(text string, want map[string]string) bool {
	cm, err := Parse([]byte(text))
	if err != nil || len(cm.Data) != len(want) {
		return false
	}
	for k, v := range want {
		if got, ok := cm.Data[k]; !ok || got != v {
			return false
		}
	}
	return true
}
