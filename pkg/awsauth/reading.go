package awsauth

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
)

// Reading a data key item by item.
//
// Reading mapRoles or mapUsers — a goyaml.v3 tree for positions and
// editing, and the authenticator's reading (YAML 1.1 to JSON) for what
// gets loaded — is most of the engine's work, and an edit changes one or
// two items of a document that is otherwise the same from one request to
// the next. So a key whose text provably reads as the concatenation of its
// top-level items is read item by item, each item on its own, and an
// ItemCache (kept by the caller, e.g. beside the admission handlers) can
// remember how each item's text reads. A key that cannot be proven to split
// is read whole, exactly as before; per-item reading gives the same
// findings, mappings and output bytes (TestItemReadingEquivalence holds it
// to that on every corpus of the package).
//
// When the split is exact: YAML is read by one scanner from the top, and
// what it carries from one item into the next is what makes a split wrong.
// The split is only made where nothing can be carried:
//   - every item starts on a line that begins, at the column of the first
//     item, with "- " (or a lone "-"); every other line is blank, a
//     comment, or indented deeper. So no line can end a block scalar,
//     plain scalar or mapping of one item and belong to the next, and no
//     document marker ("---", "...") or directive can hide at the top;
//   - the text holds none of & * (anchors and aliases, which reach across
//     items), ! (tags), % (directives), | > (block scalars, whose kept
//     trailing lines are the one thing that runs up to the next item), no
//     tab, carriage return or byte-order mark;
//   - each item, read on its own, is one YAML document holding a list of
//     exactly one item, which the authenticator's reading converts to a
//     JSON list of exactly one value. An item that ends inside a quoted
//     scalar or a flow collection does not read on its own, so the whole
//     key is read whole instead.
//
// Read on its own, an item's tokens are the whole document's tokens from
// its first line to its last, so its tree and its JSON are the ones the
// whole reading gives (shifted by the lines above it).

// ItemCache remembers how item texts read. Get and Add are called
// concurrently; an implementation may forget anything at any time.
type ItemCache interface {
	Get(text string) (*ItemReading, bool)
	Add(text string, r *ItemReading)
}

// ItemReading is how one item's text reads. It is immutable once made, and
// shared.
type ItemReading struct {
	// shape is the item as goyaml.v3 reads it (its tree is not kept),
	// lines counted from the item's first line.
	shape *itemShape
	// json is the item as the authenticator reads it.
	json json.RawMessage
	// size estimates the memory held, for caches bounded in bytes.
	size int
	// readable is false when the item does not read on its own as one list
	// item: the key is then read whole.
	readable bool
	// depth is how deep the item nests, and deepLine where (see nesting).
	depth, deepLine int
	// clean is set when the item's text passes the text rules (checkText).
	clean bool

	// view is the item's fields as the authenticator decodes them, made
	// once, when first needed, and shared by every entry read from it.
	viewOnce sync.Once
	view     *fieldView
	// role and user are the item as the authenticator's mapping structs.
	role decodedItem[authRoleMapping]
	user decodedItem[authUserMapping]
}

// Decoded the way the authenticator decodes each item of mapRoles or
// mapUsers, once, when first needed; shared, never changed.
type decodedItem[T any] struct {
	once sync.Once
	v    T
	ok   bool
}

func (d *decodedItem[T]) get(raw json.RawMessage) (T, bool) {
	d.once.Do(func() { d.ok = json.Unmarshal(raw, &d.v) == nil })
	return d.v, d.ok
}

func (r *ItemReading) asRole() (authRoleMapping, bool) { return r.role.get(r.json) }
func (r *ItemReading) asUser() (authUserMapping, bool) { return r.user.get(r.json) }

func (r *ItemReading) fields() *fieldView {
	r.viewOnce.Do(func() { r.view = readFieldView(r.json) })
	return r.view
}

// Size estimates the bytes the reading holds (its shape, JSON, what is
// decoded from it, and its text).
func (r *ItemReading) Size() int { return r.size }

// reading says how to read data keys: item by item through cache (which
// may be nil) unless whole is set.
type reading struct {
	cache ItemCache
	whole bool
}

// errReadWhole asks Render to start again reading the document whole: an
// edit of a section read item by item could not be spliced into its text.
var errReadWhole = errors.New("read the document whole")

// maxItemwiseTexts is the most different item texts a key may hold to be
// read item by item: more than an aws-auth at the 1 MiB limit holds
// entries of the usual shape (about 5,700), so that the cache beside the
// webhook holds them all and an edit of it reads only what changed. A key
// of more, smaller items (a hostile list of 50,000 tiny entries) is read
// whole: read one by one, without a cache that holds them, its items would
// cost more time than the whole reading.
const maxItemwiseTexts = 8000

// itemSpan is an item's text and its first line in the key's text.
type itemSpan struct {
	text string
	line int
}

// splitItems cuts a key's text into its top-level items, or reports false
// when the split cannot be proven exact (see above).
func splitItems(text string) ([]itemSpan, bool) {
	// (ASCII alone, byte by byte: ContainsAny with a non-ASCII set decodes
	// every rune.)
	if strings.ContainsAny(text, "&*!%|>\t\r") || strings.Contains(text, "\uFEFF") {
		return nil, false
	}
	var items []itemSpan
	col := -1 // column of the first item's "-"
	start, startLine := -1, 0
	line := 0
	for pos := 0; pos < len(text); {
		line++
		end := strings.IndexByte(text[pos:], '\n')
		next := len(text)
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(text)
		}
		l := text[pos:end]
		body := strings.TrimLeft(l, " ")
		indent := len(l) - len(body)
		switch {
		case body == "" || body[0] == '#':
			// blank or a comment: part of the item it follows
		case body[0] == '-' && (len(body) == 1 || body[1] == ' ') && (col < 0 || indent == col):
			if col < 0 {
				col = indent
			}
			if start >= 0 {
				items = append(items, itemSpan{text[start:pos], startLine})
				start, startLine = pos, line
			} else {
				// What comes before the first item (comments, blank lines)
				// is read with it: the parsers refuse some characters even
				// in comments, and those must stop the reading here too.
				start, startLine = 0, 1
			}
		case col >= 0 && indent > col:
			// inside the current item
		default:
			return nil, false
		}
		pos = next
	}
	if start < 0 {
		return nil, false
	}
	return append(items, itemSpan{text[start:], startLine}), true
}

// readItem reads one item's text on its own; tree is its goyaml.v3 tree,
// nil when the item does not read on its own.
func readItem(text string) (r *ItemReading, tree *yaml.Node) {
	r = &ItemReading{size: 2*len(text) + 256, clean: len(charcheck.ScanText(text)) == 0}
	dec := yaml.NewDecoder(strings.NewReader(text))
	var doc yaml.Node
	if dec.Decode(&doc) != nil {
		return r, nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return r, nil
	}
	root := documentRoot(&doc)
	if root == nil || root.Kind != yaml.SequenceNode || root.Style&yaml.FlowStyle != 0 || len(root.Content) != 1 {
		return r, nil
	}
	js, err := sigsyaml.YAMLToJSON([]byte(text))
	if err != nil {
		return r, nil
	}
	items, err := jsonArray(js)
	if err != nil || len(items) != 1 {
		return r, nil
	}
	tree = root.Content[0]
	r.shape, r.json, r.readable = readShape(tree), items[0], true
	r.depth, r.deepLine = nesting(tree)
	// The shape, the JSON, what is decoded from it when first used, and
	// the verdicts remembered of it (fieldView.passed: an identity key per
	// mode and data key; its groups; itemShape.roleKeys).
	r.size += 5*len(items[0]) + 1024 + r.shape.size()
	return r, tree
}

// readSpans splits a key and reads each item, through cache; false when
// the key is to be read whole.
func readSpans(text string, cache ItemCache) ([]itemSpan, []*ItemReading, bool) {
	spans, ok := splitItems(text)
	if !ok {
		return nil, nil, false
	}
	// An item written many times is read once. Read on its own, an item
	// costs more than its share of a whole reading; that pays off only
	// through a cache, which cannot hold the items of a key with very many
	// different ones: those are read whole.
	seen := make(map[string]*ItemReading, min(len(spans), maxItemwiseTexts+1))
	for _, sp := range spans {
		seen[sp.text] = nil
		if len(seen) > maxItemwiseTexts {
			return nil, nil, false
		}
	}
	readings := make([]*ItemReading, len(spans))
	for i, sp := range spans {
		r := seen[sp.text]
		if r == nil && cache != nil {
			r, _ = cache.Get(sp.text)
		}
		if r == nil {
			r, _ = readItem(sp.text)
			if cache != nil {
				cache.Add(sp.text, r)
			}
		}
		if !r.readable {
			return nil, nil, false
		}
		seen[sp.text], readings[i] = r, r
	}
	return spans, readings, true
}

// firstDash is the line and column of the first item's "-" in the text of
// the first item (which starts the key's text).
func firstDash(text string) (line, col int) {
	line = 1
	for pos := 0; pos < len(text); line++ {
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			end = len(text) - pos
		}
		l := text[pos : pos+end]
		if body := strings.TrimLeft(l, " "); body != "" && body[0] == '-' {
			return line, len(l) - len(body) + 1
		}
		pos += end + 1
	}
	return 0, 0
}
