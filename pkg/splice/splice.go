// Package splice edits YAML text by byte ranges, so that everything outside
// the edited parts — comments, blank lines, quoting, indentation, line
// ends — stays byte for byte as it was. It finds where a goyaml.v3 scalar
// node was read from, renders a replacement in the style of the scalar it
// replaces, applies non-overlapping edits, and maps the lines of the result
// back onto the lines of the original.
//
// Splicing is the fast, faithful path; whether the result means what was
// intended is for the caller to check by reading it back.
package splice

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

const bom = "\uFEFF"

// Text is an original text and the edits to be made to it.
type Text struct {
	src string
	// lineStarts[i] is the byte offset at which line i+1 starts; line 1
	// starts after a BOM, which the YAML reader skips without counting.
	lineStarts []int
	edits      []Edit
}

// Edit replaces the bytes [Start, End) of the original with Text; Start ==
// End inserts.
type Edit struct {
	Start, End int
	Text       string
}

// New prepares src for editing.
func New(src string) *Text {
	t := &Text{src: src}
	start := 0
	if strings.HasPrefix(src, bom) {
		start = len(bom)
	}
	t.lineStarts = lineStarts(src, start)
	return t
}

// lineStarts returns the offsets at which the lines of s start, the first
// at from.
func lineStarts(s string, from int) []int {
	starts := make([]int, 1, strings.Count(s[from:], "\n")+1)
	starts[0] = from
	for i := from; ; {
		nl := strings.IndexByte(s[i:], '\n')
		if nl < 0 {
			return starts
		}
		i += nl + 1
		starts = append(starts, i)
	}
}

// Source returns the original text.
func (t *Text) Source() string { return t.src }

// EOL returns the line end the text uses: "\r\n" if it holds one, else
// "\n". Lines spliced in use it, so that the result does not mix them.
func (t *Text) EOL() string {
	if strings.Contains(t.src, "\r\n") {
		return "\r\n"
	}
	return "\n"
}

// Offset turns a 1-based line and column, as goyaml.v3 counts them (in
// characters, not bytes), into a byte offset in the original. ok is false
// when the position is not in the text.
func (t *Text) Offset(line, col int) (int, bool) {
	if line < 1 || line > len(t.lineStarts) || col < 1 {
		return 0, false
	}
	off := t.lineStarts[line-1]
	for i := 1; i < col; i++ {
		if off >= len(t.src) || t.src[off] == '\n' {
			return 0, false
		}
		_, w := utf8.DecodeRuneInString(t.src[off:])
		off += w
	}
	return off, true
}

// Line returns the 1-based line of the original that holds byte offset
// off (an offset at the end of the text is on the last line).
func (t *Text) Line(off int) int {
	return max(1, sort.Search(len(t.lineStarts), func(i int) bool { return t.lineStarts[i] > off }))
}

// ScalarExtent returns the bytes [start, end) from which a plain, single-
// or double-quoted scalar was read. flow says whether the scalar sits in a
// flow collection, where ',', ']' and '}' end a plain scalar. A scalar
// with an anchor or a tag, a block scalar (see BlockExtent), a plain scalar
// over several lines or a position that does not match the text gives ok
// false: the caller must not guess.
func (t *Text) ScalarExtent(n *yaml.Node, flow bool) (start, end int, ok bool) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&yaml.TaggedStyle != 0 || n.Line == 0 {
		return 0, 0, false
	}
	start, ok = t.Offset(n.Line, n.Column)
	if !ok {
		return 0, 0, false
	}
	text := t.src
	switch n.Style &^ yaml.FlowStyle {
	case 0:
		end := start
		for end < len(text) {
			c := text[end]
			if c == '\n' || c == '\r' || c == '#' && end > start && (text[end-1] == ' ' || text[end-1] == '\t') ||
				flow && (c == ',' || c == ']' || c == '}') {
				break
			}
			end++
		}
		for end > start && (text[end-1] == ' ' || text[end-1] == '\t') {
			end--
		}
		if text[start:end] != n.Value {
			return 0, 0, false // a multi-line plain scalar, or a tag
		}
		return start, end, true
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		q := byte('"')
		if n.Style&yaml.SingleQuotedStyle != 0 {
			q = '\''
		}
		if start >= len(text) || text[start] != q {
			return 0, 0, false
		}
		for i := start + 1; i < len(text); i++ {
			switch {
			case q == '"' && text[i] == '\\':
				i++ // the escaped character cannot end the scalar
			case q == '\'' && text[i] == '\'' && i+1 < len(text) && text[i+1] == '\'':
				i++ // '' is a quote inside the scalar
			case text[i] == q:
				return start, i + 1, true
			}
		}
	}
	return 0, 0, false
}

// BlockExtent returns the bytes [start, end) of a literal ('|') or folded
// ('>') block scalar: from its indicator to the start of the first
// non-blank line indented no deeper than parentIndent (the spaces before
// the keys of the mapping, or the dashes of the sequence, that holds it),
// or the end of the text. Blank lines before that line belong to the
// block's chomping and are inside the extent; so is its last line end.
func (t *Text) BlockExtent(n *yaml.Node, parentIndent int) (start, end int, ok bool) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&yaml.TaggedStyle != 0 ||
		n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		return 0, 0, false
	}
	start, ok = t.Offset(n.Line, n.Column)
	if !ok || start >= len(t.src) || t.src[start] != '|' && t.src[start] != '>' {
		return 0, 0, false
	}
	for l := n.Line; l < len(t.lineStarts); l++ {
		line := t.src[t.lineStarts[l]:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if indent := len(line) - len(strings.TrimLeft(line, " ")); indent <= parentIndent {
			return start, t.lineStarts[l], true
		}
	}
	return start, len(t.src), true
}

// Replace records that [start, end) of the original becomes text.
func (t *Text) Replace(start, end int, text string) {
	t.edits = append(t.edits, Edit{Start: start, End: end, Text: text})
}

// Insert records that text goes in at offset at of the original. Several
// insertions at one offset go in in the order they were recorded.
func (t *Text) Insert(at int, text string) { t.Replace(at, at, text) }

// ErrOverlap is returned by Apply when two edits touch the same bytes:
// which one should win is not for the splice to guess.
var ErrOverlap = errors.New("splice: overlapping edits")

// Apply makes the recorded edits. It refuses edits outside the text, edits
// that start or end inside a character, and edits that overlap (an
// insertion may sit at either end of a replacement, not inside it). The
// original is left as it was: Apply may be called again.
func (t *Text) Apply() (*Result, error) {
	edits := append([]Edit(nil), t.edits...)
	sort.SliceStable(edits, func(i, j int) bool {
		a, b := edits[i], edits[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.End == a.Start && b.End != b.Start // insertions before a replacement from the same offset
	})
	size := len(t.src)
	for i, e := range edits {
		if e.Start < 0 || e.End < e.Start || e.End > len(t.src) ||
			!utf8.RuneStart(byteAt(t.src, e.Start)) || !utf8.RuneStart(byteAt(t.src, e.End)) {
			return nil, fmt.Errorf("splice: edit [%d, %d) is not within the text's characters", e.Start, e.End)
		}
		if i > 0 && e.Start < edits[i-1].End {
			return nil, fmt.Errorf("%w: [%d, %d) and [%d, %d)", ErrOverlap, edits[i-1].Start, edits[i-1].End, e.Start, e.End)
		}
		size += len(e.Text) - (e.End - e.Start)
	}
	r := &Result{orig: t}
	var b strings.Builder
	b.Grow(size)
	keep := func(from, to int) {
		if to > from {
			r.segs = append(r.segs, segment{at: b.Len(), orig: from})
			b.WriteString(t.src[from:to])
		}
	}
	prev := 0
	for _, e := range edits {
		keep(prev, e.Start)
		if e.Text != "" {
			r.segs = append(r.segs, segment{at: b.Len(), orig: e.Start, inserted: true})
			b.WriteString(e.Text)
		}
		prev = e.End
	}
	keep(prev, len(t.src))
	r.Text = b.String()
	return r, nil
}

// byteAt returns the byte at i, or a character start at the end.
func byteAt(s string, i int) byte {
	if i >= 0 && i < len(s) {
		return s[i]
	}
	return 0
}

// Result is the edited text.
type Result struct {
	Text string
	orig *Text
	// segs are the pieces of Text in order: kept from the original (orig
	// is where the piece came from) or inserted (orig is where it went in).
	segs []segment
	// lineStarts of Text, found when a line is first mapped.
	lines      sync.Once
	lineStarts []int
}

type segment struct {
	at, orig int
	inserted bool
}

// OriginalLine maps a 1-based line of the result onto the original: a
// line that starts in kept text maps onto the line it came from, one that
// starts in inserted text onto the line where that text went in. Findings
// about the result can so name the lines the user wrote.
func (r *Result) OriginalLine(line int) int {
	r.lines.Do(func() { r.lineStarts = lineStarts(r.Text, 0) })
	if line < 1 || line > len(r.lineStarts) || len(r.segs) == 0 {
		return line
	}
	p := r.lineStarts[line-1]
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].at > p }) - 1
	s := r.segs[max(i, 0)]
	if s.inserted {
		return r.orig.Line(s.orig)
	}
	return r.orig.Line(s.orig + p - s.at)
}

// plainSafe is text that reads as itself written plain: it starts with a
// letter (a digit could make a number) and holds no space (": " would make
// a mapping) nor any character YAML gives a meaning; it must not end in ':'
// either.
var plainSafe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+=,.@:/$-]*$`)

// nonString are the plain words YAML 1.2 or 1.1 (which the authenticator
// and kubectl read with) take for a boolean or null.
var nonString = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true, "y": true, "n": true, "null": true}

// QuoteLike renders value as a scalar in the style of the one it replaces:
// plain stays plain where value can be written plain (in a flow
// collection, where a comma ends a plain scalar, only without commas), and
// is double-quoted otherwise; quoted stays quoted the same way, except
// that what single quotes cannot hold as it is (a line break, which they
// fold, a control or an invisible character) is double-quoted. Block
// styles give ok false.
func QuoteLike(style yaml.Style, value string, flow bool) (string, bool) {
	switch style &^ yaml.FlowStyle {
	case 0:
		if plainSafe.MatchString(value) && !strings.HasSuffix(value, ":") && !(flow && strings.Contains(value, ",")) && !nonString[strings.ToLower(value)] {
			return value, true
		}
		return doubleQuoted(value), true
	case yaml.DoubleQuotedStyle:
		return doubleQuoted(value), true
	case yaml.SingleQuotedStyle:
		if !singleQuotable(value) {
			return doubleQuoted(value), true
		}
		return "'" + strings.ReplaceAll(value, "'", "''") + "'", true
	}
	return "", false
}

// singleQuotable reports whether single quotes hold value as it is.
func singleQuotable(value string) bool {
	return utf8.ValidString(value) && !strings.ContainsFunc(value, func(r rune) bool { return r != '\t' && !unicode.IsPrint(r) })
}

// doubleQuoted writes value as a YAML double-quoted scalar: Go's escapes
// for printable text are YAML's. (Bytes that are not UTF-8 come out as
// \xNN, which YAML reads as a character; reading the result back catches
// that.)
func doubleQuoted(value string) string {
	return fmt.Sprintf("%q", value)
}
