// Package manifest reads a ConfigMap manifest (YAML or JSON, as kubectl
// prints it) and writes changed data keys back into the same text, leaving
// every other byte — metadata, comments, other keys — as it was.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
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

// Parse reads one ConfigMap manifest.
func Parse(raw []byte) (*ConfigMap, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the manifest is not valid YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the manifest is not a ConfigMap object (expected a mapping with kind: ConfigMap)")
	}
	cm := &ConfigMap{text: string(raw), doc: &doc, Data: map[string]string{}, values: map[string]*yaml.Node{}}
	root := doc.Content[0]
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
	return cm, nil
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
// changed value is spliced in as a literal block (or a JSON string where
// the original was one); the result is read back and must hold exactly the
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
	lines := lineStarts(cm.text)
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
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
		start, end, ok := valueExtent(cm.text, lines, n, keyCol)
		if !ok {
			return "", false
		}
		text := block(v, keyCol+2)
		if n.Style == yaml.DoubleQuotedStyle {
			b, _ := json.Marshal(v)
			text = string(b)
		} else if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		edits = append(edits, edit{start, end, text})
	}
	if added.Len() > 0 {
		// New keys go after the last value of data, on their own lines.
		last := cm.data.Content[len(cm.data.Content)-1]
		_, end, ok := valueExtent(cm.text, lines, last, keyCol)
		if !ok {
			return "", false
		}
		if nl := strings.IndexByte(cm.text[end:], '\n'); nl >= 0 && (end == 0 || cm.text[end-1] != '\n') {
			end += nl + 1
		} else if nl < 0 && !strings.HasSuffix(cm.text, "\n") {
			return "", false
		}
		edits = append(edits, edit{end, end, added.String()})
	}
	out := cm.text
	// Apply from the end so earlier offsets stay valid.
	for len(edits) > 0 {
		best := 0
		for i := range edits {
			if edits[i].start > edits[best].start {
				best = i
			}
		}
		e := edits[best]
		out = out[:e.start] + e.text + out[e.end:]
		edits = append(edits[:best], edits[best+1:]...)
	}
	return out, true
}

// valueExtent finds the bytes of a data value: a literal/folded block runs
// to the first non-blank line indented at or left of the data keys; a
// quoted or plain scalar ends on its own line.
func valueExtent(text string, lines []int, n *yaml.Node, keyCol int) (int, int, bool) {
	if n.Line < 1 || n.Line > len(lines) || n.Anchor != "" {
		return 0, 0, false
	}
	start := lines[n.Line-1]
	for i := 1; i < n.Column; i++ {
		if start >= len(text) {
			return 0, 0, false
		}
		_, w := utf8.DecodeRuneInString(text[start:])
		start += w
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		for l := n.Line; l < len(lines); l++ {
			line := text[lines[l]:]
			if i := strings.IndexByte(line, '\n'); i >= 0 {
				line = line[:i]
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if indent := len(line) - len(strings.TrimLeft(line, " ")); indent < keyCol {
				// The block ends before this line; trailing blank lines
				// belong to the block's chomping, keep them with it.
				return start, lines[l], true
			}
		}
		return start, len(text), true
	case yaml.DoubleQuotedStyle, 0, yaml.SingleQuotedStyle:
		end := len(text)
		if n.Line < len(lines) {
			end = lines[n.Line]
		}
		line := text[start:end]
		if trimmed := strings.TrimRight(line, "\r\n"); n.Style != 0 || !strings.Contains(trimmed, " #") {
			if n.Style == yaml.DoubleQuotedStyle && !strings.HasSuffix(strings.TrimSpace(trimmed), `"`) {
				return 0, 0, false // a quoted string that spans lines
			}
			return start, start + len(strings.TrimRight(trimmed, " ")), true
		}
	}
	return 0, 0, false
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

func lineStarts(text string) []int {
	starts := []int{0}
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
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
