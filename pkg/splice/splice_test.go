package splice

import (
	"errors"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// parse reads text with goyaml.v3, as the callers do.
func parse(t *testing.T, text string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return &doc
}

// find returns the first scalar (in document order) whose value is v, and
// whether it sits in a flow collection.
func find(n *yaml.Node, v string, flow bool) (*yaml.Node, bool) {
	if n.Kind == yaml.ScalarNode && n.Value == v {
		return n, flow
	}
	flow = flow || n.Style&yaml.FlowStyle != 0
	for _, c := range n.Content {
		if f, fl := find(c, v, flow); f != nil {
			return f, fl
		}
	}
	return nil, false
}

// TestScalarExtent: the extent found from the parser's line and column is
// exactly the scalar as written, whatever comes before it on the line or
// in the text.
func TestScalarExtent(t *testing.T) {
	for name, tc := range map[string]struct {
		text, value, want string
	}{
		"plain":                      {"a: foo\nb: bar\n", "bar", "bar"},
		"plain, a comment after":     {"a: foo # bar\n", "foo", "foo"},
		"plain, spaces after":        {"a: foo   \nb: x\n", "foo", "foo"},
		"plain, '#' inside":          {"a: foo#bar\n", "foo#bar", "foo#bar"},
		"plain, no line end":         {"a: foo", "foo", "foo"},
		"CRLF":                       {"a: foo\r\nb: bar\r\n", "bar", "bar"},
		"CRLF, a comment after":      {"a: foo # c\r\n", "foo", "foo"},
		"BOM, line 1":                {"\ufeffa: foo\n", "foo", "foo"},
		"BOM, line 2":                {"\ufeffa: foo\nb: 'bar'\n", "bar", "'bar'"},
		"multibyte before":           {"ключ: значение\n", "значение", "значение"},
		"4-byte before, quoted":      {"😀😀: \"x\\\"y\"\n", `x"y`, `"x\"y"`},
		"multibyte in a sequence":    {"- é: 1\n  ü: 'ß'\n", "ß", "'ß'"},
		"flow sequence":              {"[ab, cd, ef]\n", "cd", "cd"},
		"flow sequence, last":        {"[ab, cd]\n", "cd", "cd"},
		"flow mapping":               {"{k: v, w: x}\n", "v", "v"},
		"flow in block":              {"- {rolearn: arn:aws:iam::1:role/x, username: u}\n", "arn:aws:iam::1:role/x", "arn:aws:iam::1:role/x"},
		"single-quoted, '' inside":   {"a: 'it''s' # c\n", "it's", "'it''s'"},
		"single-quoted, '' at end":   {"a: 'x'''\n", "x'", "'x'''"},
		"double-quoted, escapes":     {`a: "q\\" # "` + "\n", `q\`, `"q\\"`},
		"double-quoted, \\n and \\u": {`a: "a\nb\u00e9\"" # c` + "\n", "a\nbé\"", `"a\nb\u00e9\""`},
		"double-quoted, two lines":   {"a: \"x\n  y\"\nb: z\n", "x y", "\"x\n  y\""},
		"single-quoted, two lines":   {"a: 'x\n  y'\n", "x y", "'x\n  y'"},
		"double-quoted in flow":      {`["a,b", "c]"]` + "\n", "c]", `"c]"`},
	} {
		t.Run(name, func(t *testing.T) {
			n, flow := find(parse(t, tc.text), tc.value, false)
			if n == nil {
				t.Fatalf("no scalar %q", tc.value)
			}
			text := New(tc.text)
			start, end, ok := text.ScalarExtent(n, flow)
			if !ok {
				t.Fatalf("no extent for %q", tc.value)
			}
			if got := tc.text[start:end]; got != tc.want {
				t.Fatalf("extent %q, want %q", got, tc.want)
			}
		})
	}
}

// TestScalarExtentRefuses: what the extent cannot be sure of is refused,
// never guessed.
func TestScalarExtentRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ text, value string }{
		"an anchor":            {"a: &x foo\n", "foo"},
		"a tag":                {"a: !!str foo\n", "foo"},
		"a tag, quoted":        {"a: !!str 'foo'\n", "foo"},
		"a non-specific tag":   {"a: ! 'foo'\n", "foo"},
		"a plain on two lines": {"a: foo\n  bar\n", "foo bar"},
		"a literal block":      {"a: |\n  foo\n", "foo\n"},
		"a folded block":       {"a: >-\n  foo\n", "foo"},
	} {
		t.Run(name, func(t *testing.T) {
			n, flow := find(parse(t, tc.text), tc.value, false)
			if n == nil {
				t.Fatalf("no scalar %q", tc.value)
			}
			if start, end, ok := New(tc.text).ScalarExtent(n, flow); ok {
				t.Fatalf("extent %q given", tc.text[start:end])
			}
		})
	}
	text := New("a: b\n")
	for name, n := range map[string]*yaml.Node{
		"nil":               nil,
		"no position":       {Kind: yaml.ScalarNode, Value: "b"},
		"past the text":     {Kind: yaml.ScalarNode, Value: "b", Line: 3, Column: 1},
		"past the line":     {Kind: yaml.ScalarNode, Value: "b", Line: 1, Column: 9},
		"not what is there": {Kind: yaml.ScalarNode, Value: "c", Line: 1, Column: 4},
		"a mapping":         {Kind: yaml.MappingNode, Line: 1, Column: 1},
	} {
		if _, _, ok := text.ScalarExtent(n, false); ok {
			t.Errorf("%s: extent given", name)
		}
	}
}

// TestBlockExtent: a block scalar runs from its indicator through its last
// line end, trailing blank lines (its chomping) included.
func TestBlockExtent(t *testing.T) {
	for name, tc := range map[string]struct {
		text, value, want string
		indent            int
	}{
		"literal":               {"data:\n  k: |\n    a\n\n    b\n\n  j: x\n", "a\n\nb\n", "|\n    a\n\n    b\n\n", 2},
		"literal, at the end":   {"data:\n  k: |-\n    a\n", "a", "|-\n    a\n", 2},
		"no last line end":      {"data:\n  k: |-\n    a", "a", "|-\n    a", 2},
		"folded, CRLF":          {"data:\r\n  k: >\r\n    a\r\n    b\r\n  j: x\r\n", "a b\n", ">\r\n    a\r\n    b\r\n", 2},
		"a comment after":       {"k: |\n  a\n# c\nj: x\n", "a\n", "|\n  a\n", 0},
		"keep, blank lines":     {"k: |+\n  a\n\n\nj: x\n", "a\n\n\n", "|+\n  a\n\n\n", 0},
		"BOM and multibyte key": {"\ufeffключ: |\n  a\n", "a\n", "|\n  a\n", 0},
	} {
		t.Run(name, func(t *testing.T) {
			n, _ := find(parse(t, tc.text), tc.value, false)
			if n == nil {
				t.Fatalf("no scalar %q", tc.value)
			}
			start, end, ok := New(tc.text).BlockExtent(n, tc.indent)
			if !ok {
				t.Fatal("no extent")
			}
			if got := tc.text[start:end]; got != tc.want {
				t.Fatalf("extent %q, want %q", got, tc.want)
			}
		})
	}
	n, _ := find(parse(t, "a: b\n"), "b", false)
	if _, _, ok := New("a: b\n").BlockExtent(n, 0); ok {
		t.Error("a plain scalar given a block extent")
	}
}

// TestApply: edits are made at their offsets whatever order they were
// recorded in; overlapping edits and edits off the text's characters are
// refused.
func TestApply(t *testing.T) {
	const src = "héllo world\n"
	for name, tc := range map[string]struct {
		edits   []Edit
		want    string
		overlap bool
		fails   bool
	}{
		"none":                               {want: src},
		"one replacement":                    {edits: []Edit{{7, 12, "there"}}, want: "héllo there\n"},
		"recorded back to front":             {edits: []Edit{{7, 12, "W"}, {0, 1, "H"}}, want: "Héllo W\n"},
		"a deletion":                         {edits: []Edit{{6, 12, ""}}, want: "héllo\n"},
		"insertions at one offset, in order": {edits: []Edit{{0, 0, "a"}, {0, 0, "b"}}, want: "abhéllo world\n"},
		"insertion before a replacement":     {edits: []Edit{{7, 12, "W"}, {7, 7, ">"}}, want: "héllo >W\n"},
		"insertion after a replacement":      {edits: []Edit{{12, 12, "<"}, {7, 12, "W"}}, want: "héllo W<\n"},
		"adjacent replacements":              {edits: []Edit{{0, 6, "a"}, {6, 7, "b"}}, want: "abworld\n"},
		"at the end":                         {edits: []Edit{{13, 13, "x\n"}}, want: src + "x\n"},
		"overlapping replacements":           {edits: []Edit{{0, 7, "a"}, {6, 12, "b"}}, overlap: true},
		"one range twice":                    {edits: []Edit{{7, 12, "a"}, {7, 12, "b"}}, overlap: true},
		"insertion inside a replacement":     {edits: []Edit{{0, 7, "a"}, {3, 3, "b"}}, overlap: true},
		"one inside another":                 {edits: []Edit{{0, 12, "a"}, {3, 5, "b"}}, overlap: true},
		"inside a character":                 {edits: []Edit{{2, 3, "e"}}, fails: true},
		"past the end":                       {edits: []Edit{{13, 14, ""}}, fails: true},
		"backwards":                          {edits: []Edit{{5, 4, ""}}, fails: true},
	} {
		t.Run(name, func(t *testing.T) {
			text := New(src)
			for _, e := range tc.edits {
				text.Replace(e.Start, e.End, e.Text)
			}
			r, err := text.Apply()
			switch {
			case tc.overlap:
				if !errors.Is(err, ErrOverlap) {
					t.Fatalf("err = %v, want ErrOverlap", err)
				}
			case tc.fails:
				if err == nil || errors.Is(err, ErrOverlap) {
					t.Fatalf("err = %v, want a refusal", err)
				}
			case err != nil:
				t.Fatal(err)
			case r.Text != tc.want:
				t.Fatalf("got %q, want %q", r.Text, tc.want)
			}
		})
	}
}

// TestOriginalLine: each line of the result names the line of the original
// it came from; an inserted line names the line it went in before.
func TestOriginalLine(t *testing.T) {
	for name, eol := range map[string]string{"LF": "\n", "CRLF": "\r\n"} {
		t.Run(name, func(t *testing.T) {
			lines := []string{
				"\ufeff- rolearn: a", // 1 (a BOM does not count)
				"  username: \"x",    // 2
				"    y\"",            // 3: the quoted scalar ends here
				"- rolearn: b",       // 4
				"  groups: [g]",      // 5
			}
			src := strings.Join(lines, eol) + eol
			text := New(src)
			doc := parse(t, src)
			// As the engine does: a quoted scalar over two lines becomes
			// one, a field goes in before "groups", an entry is appended.
			n, _ := find(doc, "x y", false)
			start, end, ok := text.ScalarExtent(n, false)
			if !ok {
				t.Fatal("no extent")
			}
			text.Replace(start, end, `"xy"`)
			g, _ := find(doc, "groups", false)
			at, ok := text.Offset(g.Line, g.Column)
			if !ok {
				t.Fatal("no offset")
			}
			text.Insert(at, "username: u"+eol+"  ")
			text.Insert(len(src), "- rolearn: c"+eol+"  username: n"+eol)
			r, err := text.Apply()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Join([]string{
				"\ufeff- rolearn: a",
				"  username: \"xy\"",
				"- rolearn: b",
				"  username: u",
				"  groups: [g]",
				"- rolearn: c",
				"  username: n",
			}, eol) + eol
			if r.Text != want {
				t.Fatalf("got %q\nwant %q", r.Text, want)
			}
			// result line → original line; line 8 is the empty one after
			// the last line end, where the appended lines went in.
			for res, orig := range map[int]int{1: 1, 2: 2, 3: 4, 4: 5, 5: 5, 6: 6, 7: 6, 8: 6} {
				if got := r.OriginalLine(res); got != orig {
					t.Errorf("OriginalLine(%d) = %d, want %d", res, got, orig)
				}
			}
		})
	}
}

// TestOffset: columns count characters, not bytes; a BOM is not counted.
func TestOffset(t *testing.T) {
	src := "\ufeffé😀x\r\nab\n"
	text := New(src)
	for _, tc := range []struct {
		line, col, want int
		ok              bool
	}{
		{1, 1, 3, true}, {1, 2, 5, true}, {1, 3, 9, true}, {1, 4, 10, true},
		{2, 1, 12, true}, {2, 3, 14, true}, {3, 1, 15, true},
		{2, 4, 0, false}, {4, 1, 0, false}, {0, 1, 0, false}, {1, 0, 0, false},
	} {
		got, ok := text.Offset(tc.line, tc.col)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("Offset(%d, %d) = %d, %v; want %d, %v", tc.line, tc.col, got, ok, tc.want, tc.ok)
		}
	}
	if New("a\r\nb").EOL() != "\r\n" || New("a\nb").EOL() != "\n" {
		t.Error("EOL")
	}
}

// TestQuoteLike: a replacement keeps the style of the scalar it replaces
// and reads back as exactly the value, in block and flow context alike.
func TestQuoteLike(t *testing.T) {
	values := []string{
		"arn:aws:iam::111122223333:role/admin", "alice", "system:node:{{EC2PrivateDNSName}}",
		"a,b", "it's", `say "hi"`, `back\slash`, "a: b", "x #y", "- dash", "héllo", "😀",
		"tab\there", "line\nbreak", "\u2028", "\u0085", "\ufeffbom", "\x01", "",
		"true", "True", "yes", "Off", "null", "~", "123", "1e3", "0x1F", ".inf", "a:", "*star", "&anchor", "!tag",
	}
	for _, style := range []yaml.Style{0, yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle} {
		for _, v := range values {
			for _, flow := range []bool{false, true} {
				q, ok := QuoteLike(style, v, flow)
				if !ok {
					t.Fatalf("style %v refused", style)
				}
				doc := "k: " + q + "\n"
				if flow {
					doc = "[" + q + ", next]\n"
				}
				var got yaml.Node
				if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
					t.Errorf("style %v, %q (flow %v): %q does not parse: %v", style, v, flow, doc, err)
					continue
				}
				n := got.Content[0].Content[1]
				if flow {
					n = got.Content[0].Content[0]
				}
				if n.Value != v || n.ShortTag() != "!!str" {
					t.Errorf("style %v, %q (flow %v): %q reads as %s %q", style, v, flow, q, n.ShortTag(), n.Value)
				}
				want := style
				if style == yaml.SingleQuotedStyle && strings.ContainsAny(v, "\n\u0085\u2028\ufeff\x01") {
					want = yaml.DoubleQuotedStyle // single quotes cannot hold it
				}
				if style != 0 && n.Style != want { // plain may have to be quoted
					t.Errorf("style %v, %q: written %q, in style %v", style, v, q, n.Style)
				}
			}
		}
	}
	// Plain stays plain where it can.
	for _, v := range []string{"arn:aws:iam::111122223333:role/admin", "alice"} {
		if q, _ := QuoteLike(0, v, true); q != v {
			t.Errorf("%q written %q", v, q)
		}
	}
	for _, style := range []yaml.Style{yaml.LiteralStyle, yaml.FoldedStyle, yaml.TaggedStyle} {
		if _, ok := QuoteLike(style, "x", false); ok {
			t.Errorf("style %v accepted", style)
		}
	}
}

// TestOnlyTheEditChanges: replacing scalars found by ScalarExtent with
// QuoteLike leaves every other byte as it was, and the result reads as the
// original with exactly those values changed.
func TestOnlyTheEditChanges(t *testing.T) {
	src := "\ufeff# head\r\n" +
		"- rolearn: arn:aws:iam::1:role/a   # keep me\r\n" +
		"  username: 'ünï''code'\r\n" +
		"  groups: [\"g,1\", g2]\r\n" +
		"- {rolearn: \"arn:aws:iam::1:role/b\", username: bob}\r\n"
	doc := parse(t, src)
	changes := map[string]string{
		"arn:aws:iam::1:role/a": "arn:aws:iam::2:role/A",
		"ünï'code":              "it's new",
		"g2":                    "g,2",
		"arn:aws:iam::1:role/b": "arn:aws:iam::2:role/\"B\"",
		"bob":                   "robert",
	}
	text := New(src)
	var edits []Edit
	for old, v := range changes {
		n, flow := find(doc, old, false)
		start, end, ok := text.ScalarExtent(n, flow)
		if !ok {
			t.Fatalf("no extent for %q", old)
		}
		q, _ := QuoteLike(n.Style, v, flow)
		text.Replace(start, end, q)
		edits = append(edits, Edit{start, end, q})
		n.Value = v
	}
	r, err := text.Apply()
	if err != nil {
		t.Fatal(err)
	}
	// Every byte outside the edits is the original's, in order.
	slices.SortFunc(edits, func(a, b Edit) int { return a.Start - b.Start })
	var want strings.Builder
	prev := 0
	for _, e := range edits {
		want.WriteString(src[prev:e.Start] + e.Text)
		prev = e.End
	}
	want.WriteString(src[prev:])
	if r.Text != want.String() {
		t.Fatalf("got  %q\nwant %q", r.Text, want.String())
	}
	// And the result means the edited tree.
	var meant, got strings.Builder
	dump(&meant, doc)
	dump(&got, parse(t, r.Text))
	if meant.String() != got.String() {
		t.Fatalf("result reads as\n%s\nwant\n%s", got.String(), meant.String())
	}
}

func dump(b *strings.Builder, n *yaml.Node) {
	b.WriteString(n.ShortTag() + " " + n.Value + "\n")
	for _, c := range n.Content {
		dump(b, c)
	}
}
