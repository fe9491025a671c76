// Command promql parses PromQL expressions with Prometheus's own parser and
// prints the series selectors each one uses. charts/alerts_test.go runs it
// on the chart's alert expressions; it lives in a module of its own so
// that Prometheus's dependencies stay out of the webhook's go.mod.
//
// Input (stdin):  [{"name": "AlertName", "expr": "..."}]
// Output (stdout): [{"name": ..., "error": ..., "selectors": [{"metric": ..., "matchers": [{"name", "type", "value"}]}]}]
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type input struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
}

type matcher struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type selector struct {
	Metric   string    `json:"metric"`
	Matchers []matcher `json:"matchers"`
}

type output struct {
	Name      string     `json:"name"`
	Error     string     `json:"error,omitempty"`
	Selectors []selector `json:"selectors"`
}

func main() {
	var in []input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "promql: reading the expressions:", err)
		os.Exit(2)
	}
	// The parser as Prometheus runs it by default: no experimental
	// functions, which a rule must not depend on.
	p := parser.NewParser(parser.Options{})
	out := make([]output, 0, len(in))
	for _, e := range in {
		o := output{Name: e.Name, Selectors: []selector{}}
		expr, err := p.ParseExpr(e.Expr)
		if err != nil {
			o.Error = err.Error()
			out = append(out, o)
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			s := selector{Metric: vs.Name, Matchers: []matcher{}}
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					if s.Metric == "" && m.Type == labels.MatchEqual {
						s.Metric = m.Value
					}
					continue
				}
				s.Matchers = append(s.Matchers, matcher{Name: m.Name, Type: m.Type.String(), Value: m.Value})
			}
			o.Selectors = append(o.Selectors, s)
			return nil
		})
		out = append(out, o)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "promql:", err)
		os.Exit(2)
	}
}
