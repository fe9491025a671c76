// Package charts checks the Helm chart's documentation against its values,
// so the two cannot drift. `make chart-docs` rewrites the table.
package charts

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

const (
	chartDir    = "aws-auth-webhook"
	beginMarker = "<!-- values:begin (generated from values.yaml by `make chart-docs`) -->"
	endMarker   = "<!-- values:end -->"
)

// valuesTable renders every value documented with a "# --" comment in
// values.yaml as a Markdown table: key, type, default, description.
func valuesTable(t *testing.T) string {
	raw, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc, documented := describe(k.HeadComment)
			if !documented {
				if v.Kind != yaml.MappingNode {
					t.Errorf("values.yaml: %s has no '# --' description", key)
					continue
				}
				walk(key+".", v)
				continue
			}
			var val any
			if err := v.Decode(&val); err != nil {
				t.Fatal(err)
			}
			def, _ := json.Marshal(val)
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", key, typeOf(val), def, desc)
		}
	}
	walk("", doc.Content[0])
	return b.String()
}

// describe turns a "# -- text" head comment (possibly several lines) into
// one line of description.
func describe(comment string) (string, bool) {
	idx := strings.Index(comment, "# --")
	if idx < 0 {
		return "", false
	}
	var parts []string
	for _, line := range strings.Split(comment[idx+len("# --"):], "\n") {
		parts = append(parts, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#")))
	}
	return strings.ReplaceAll(strings.TrimSpace(strings.Join(parts, " ")), "|", `\|`), true
}

func typeOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "list"
	case string:
		return "string"
	case bool:
		return "bool"
	case int, float64:
		return "number"
	}
	return "null"
}

// TestChartREADMEDocumentsEveryValue fails when README.md's values table
// is not what values.yaml says; UPDATE_CHART_README=1 rewrites it.
func TestChartREADMEDocumentsEveryValue(t *testing.T) {
	table := valuesTable(t)
	path := chartDir + "/README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	begin, end := strings.Index(readme, beginMarker), strings.Index(readme, endMarker)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the %q ... %q markers", path, beginMarker, endMarker)
	}
	want := readme[:begin] + beginMarker + "\n" + table + readme[end:]
	if readme == want {
		return
	}
	if os.Getenv("UPDATE_CHART_README") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with values.yaml; run `make chart-docs`. The table should read:\n%s", path, table)
}

// TestValuesMatchSchema checks values.yaml against the top-level keys of
// values.schema.json (the full schema is enforced by helm at install).
func TestValuesMatchSchema(t *testing.T) {
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	raw, err := os.ReadFile(chartDir + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	raw, _ = os.ReadFile(chartDir + "/values.yaml")
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	for k := range values {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("values.yaml key %q is not in values.schema.json", k)
		}
	}
}
