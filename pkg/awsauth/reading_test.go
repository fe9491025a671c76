package awsauth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// mapCache is the simplest ItemCache: it remembers everything.
type mapCache struct {
	mu         sync.Mutex
	m          map[string]*ItemReading
	hits, adds int
}

func newMapCache() *mapCache { return &mapCache{m: map[string]*ItemReading{}} }

func (c *mapCache) Get(text string) (*ItemReading, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[text]
	if ok {
		c.hits++
	}
	return r, ok
}

func (c *mapCache) Add(text string, r *ItemReading) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adds++
	c.m[text] = r
}

// equivalenceDocs are the documents of every corpus of the package: the
// golden files (inputs and outputs), the hostile cases, the differential
// corpus (n generated documents) and the benchmark documents.
func equivalenceDocs(t *testing.T, n int) []corpusDoc {
	var docs []corpusDoc
	files, _ := filepath.Glob("testdata/render/*.txt")
	sort.Strings(files)
	for _, file := range files {
		gc := readGolden(t, file)
		docs = append(docs, corpusDoc{origin: "golden", detail: filepath.Base(file) + " in", data: gc.in})
		if len(gc.out) > 0 {
			docs = append(docs, corpusDoc{origin: "golden", detail: filepath.Base(file) + " out", data: gc.out})
		}
	}
	for _, tc := range hostileCases() {
		docs = append(docs, corpusDoc{origin: "hostile", detail: tc.name, data: tc.data})
	}
	for _, size := range []int{10, 100, 1000} {
		d, _ := benchDocument(size)
		docs = append(docs, corpusDoc{origin: "bench", detail: fmt.Sprint(size), data: d},
			corpusDoc{origin: "bench", detail: fmt.Sprint(size, " edited"), data: benchEdit(d, 7)})
	}
	// At the 1 MiB limit (read item by item too), the edit alone: the
	// document is the edit's without its last entry.
	d, _ := benchDocument(benchMax)
	docs = append(docs, corpusDoc{origin: "bench", detail: "1 MiB edited", data: benchEdit(d, 7)})
	gen := newCorpus(t, 1)
	for range n {
		docs = append(docs, gen.next())
	}
	return docs
}

// readBothWays runs fn reading whole (as the authenticator's parser is
// held to it), then item by item: without a cache, with an empty cache
// and with the cache it filled.
func readBothWays[T any](fn func(reading) T) (whole T, itemwise []T) {
	cache := newMapCache()
	return fn(reading{whole: true}), []T{fn(reading{}), fn(reading{cache: cache}), fn(reading{cache: cache})}
}

// TestItemReadingEquivalence holds per-item reading to the whole-document
// reading on every corpus: the same findings, mappings and output bytes
// from Lint and Render, the same mappings from LoadAsAuthenticator. The
// long form: AWS_AUTH_WEBHOOK_DIFF_N (the differential's size).
func TestItemReadingEquivalence(t *testing.T) {
	docs := equivalenceDocs(t, envInt(t, diffNEnv, diffShortN))
	var mu sync.Mutex
	split := map[string]int{}
	var failures []string
	work := make(chan corpusDoc)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for doc := range work {
				n, failure := checkEquivalence(doc)
				mu.Lock()
				split[doc.origin] += n
				if failure != "" && len(failures) < 5 {
					failures = append(failures, failure)
				}
				mu.Unlock()
			}
		}()
	}
	for _, doc := range docs {
		work <- doc
	}
	close(work)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("keys read item by item, by corpus: %v (of %d documents)", split, len(docs))
	// An equivalence over documents that are all read whole proves nothing.
	for _, origin := range []string{"golden", "hostile", "bench", "mutated", "random"} {
		if split[origin] == 0 {
			t.Errorf("no %s document was read item by item", origin)
		}
	}
}

// checkEquivalence reads doc both ways and says how they differ, if they
// do; n is the number of its keys that split into items.
func checkEquivalence(doc corpusDoc) (n int, failure string) {
	for _, key := range []string{KeyMapRoles, KeyMapUsers} {
		if _, ok := splitItems(doc.data[key]); ok {
			n++
		}
	}
	node := []string{"arn:aws:iam::111122223333:role/eks-node"}
	for _, opts := range []Options{{}, {NodeRoleARNs: node}, {NodeRoleARNs: node, KeepUnresolved: true}} {
		type answer struct {
			res *Result
			err error
		}
		whole, itemwise := readBothWays(func(rd reading) answer {
			res, err := render(context.Background(), doc.data, newFakeResolver(), opts, rd)
			if errors.Is(err, errReadWhole) { // as Render does
				res, err = render(context.Background(), doc.data, newFakeResolver(), opts, reading{cache: rd.cache, whole: true})
			}
			return answer{res, err}
		})
		for i, got := range itemwise {
			if !reflect.DeepEqual(got, whole) {
				return n, fmt.Sprintf("%s %s: Render with options %+v, read item by item (run %d), differs from the whole reading:\n%s\ndocument:\n%s",
					doc.origin, doc.detail, opts, i, resultDiff(got.res, whole.res), showDoc(doc.data))
			}
		}
	}
	lintWhole, lintItems := readBothWays(func(rd reading) *Result { return lint(doc.data, Options{}, rd) })
	for i, got := range lintItems {
		if !reflect.DeepEqual(got, lintWhole) {
			return n, fmt.Sprintf("%s %s: Lint read item by item (run %d) differs from the whole reading:\n%s\ndocument:\n%s",
				doc.origin, doc.detail, i, resultDiff(got, lintWhole), showDoc(doc.data))
		}
	}
	loadWhole, loadItems := readBothWays(func(rd reading) *Loaded { return load(doc.data, rd) })
	for i, got := range loadItems {
		if !reflect.DeepEqual(got, loadWhole) {
			return n, fmt.Sprintf("%s %s: LoadAsAuthenticator read item by item (run %d) differs:\n%+v\nwant %+v\ndocument:\n%s",
				doc.origin, doc.detail, i, got, loadWhole, showDoc(doc.data))
		}
	}
	return n, ""
}

func resultDiff(got, want *Result) string {
	if got == nil || want == nil {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var b strings.Builder
	if !reflect.DeepEqual(got.Data, want.Data) {
		fmt.Fprintf(&b, "data:\n%q\nwant:\n%q\n", got.Data, want.Data)
	}
	if !reflect.DeepEqual(got.Findings, want.Findings) {
		fmt.Fprintf(&b, "findings:\n%s\nwant:\n%s\n", strings.Join(got.Findings.Strings(), "\n"), strings.Join(want.Findings.Strings(), "\n"))
	}
	if !reflect.DeepEqual(got.Roles, want.Roles) || !reflect.DeepEqual(got.Users, want.Users) {
		fmt.Fprintf(&b, "mappings: %+v %+v\nwant: %+v %+v\n", got.Roles, got.Users, want.Roles, want.Users)
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "%+v\nwant %+v", got, want)
	}
	return b.String()
}

// TestSplitItems checks where the split is made and where it is refused.
func TestSplitItems(t *testing.T) {
	type span struct {
		line int
		text string
	}
	cases := []struct {
		name string
		text string
		want []span // nil: read whole
	}{
		{"items with comments", "# head\n- a: 1\n  b: 2\n\n# between\n- c: 3\n",
			[]span{{1, "# head\n- a: 1\n  b: 2\n\n# between\n"}, {6, "- c: 3\n"}}},
		{"indented list", "  - a: 1\n  -\n  - b: 2", []span{{1, "  - a: 1\n"}, {2, "  -\n"}, {3, "  - b: 2"}}},
		{"comment less indented", "  - a: 1\n# note\n  - b: 2\n", []span{{1, "  - a: 1\n# note\n"}, {3, "  - b: 2\n"}}},
		{"not a list", "a: 1\n", nil},
		{"only comments", "# nothing\n", nil},
		{"anchor", "- a: &x 1\n- b: *x\n", nil},
		{"tag", "- a: !!str 1\n", nil},
		{"directive", "%YAML 1.1\n---\n- a: 1\n", nil},
		{"document marker", "- a: 1\n---\n- b: 2\n", nil},
		{"document end", "- a: 1\n...\n- b: 2\n", nil},
		{"block scalar", "- a: |\n    x\n- b: 2\n", nil},
		{"folded scalar", "- a: >\n    x\n", nil},
		{"tab", "- a: 1\n\t- b: 2\n", nil},
		{"carriage return", "- a: 1\r\n- b: 2\r\n", nil},
		{"byte-order mark", "\uFEFF- a: 1\n", nil},
		{"deeper lines, whatever they hold", "- a: 1\n  - b: 2\n - c: 3\n", []span{{1, "- a: 1\n  - b: 2\n - c: 3\n"}}},
		{"item at a lesser column", "  - a: 1\n - b: 2\n", nil},
		{"line at the list's column", "- a: 1\nb: 2\n", nil},
		{"flow list", "[{a: 1}]\n", nil},
		{"dash without space", "- a: 1\n-b: 2\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := splitItems(tc.text)
			if tc.want == nil {
				if ok {
					t.Fatalf("split %q into %+v; want it read whole", tc.text, got)
				}
				return
			}
			var spans []span
			for _, s := range got {
				spans = append(spans, span{s.line, s.text})
			}
			if !ok || !reflect.DeepEqual(spans, tc.want) {
				t.Fatalf("split %q: got %+v (%v), want %+v", tc.text, spans, ok, tc.want)
			}
		})
	}
}

// TestItemsThatDoNotReadAlone: a split that cuts a quoted scalar or a flow
// collection in two is caught when the items are read, and the key is read
// whole: the finding is the whole reading's, about the text as written.
func TestItemsThatDoNotReadAlone(t *testing.T) {
	for _, text := range []string{
		"- rolearn: \"arn:aws:iam::111122223333:role/a\n- b\"\n  username: x\n",
		"- rolearn: arn:aws:iam::111122223333:role/a\n  groups: [a,\n- b]\n",
		"- rolearn: 'arn:aws:iam::111122223333:role/a\n# not a comment\n- b'\n  username: x\n",
	} {
		if _, ok := splitItems(text); !ok {
			t.Fatalf("expected the line scan to split %q (the items catch it)", text)
		}
		if _, _, ok := readSpans(text, nil); ok {
			t.Fatalf("read %q item by item; the items do not read alone", text)
		}
		data := map[string]string{KeyMapRoles: text}
		want := lint(data, Options{}, reading{whole: true})
		got := LintWithOptions(data, Options{Cache: newMapCache()})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %s", text, resultDiff(got, want))
		}
	}
}

// TestVerdictsRememberedAcrossDocuments: an item's reading is shared by
// every document that holds its text, and remembers what was found of it
// (fieldView.passed, .groups; itemShape.roleKeys). Through one cache for
// the whole corpus — each document also with mapRoles and mapUsers
// swapped, so that the same text is judged under the other key, and each
// linted and rendered, so that it is judged in both modes — every answer
// must be the one the whole reading gives without a cache.
func TestVerdictsRememberedAcrossDocuments(t *testing.T) {
	var docs []corpusDoc
	for _, d := range equivalenceDocs(t, 500) {
		if len(d.data[KeyMapRoles])+len(d.data[KeyMapUsers]) < 64<<10 { // what is judged is items, not their number
			docs = append(docs, d)
		}
	}
	// Entries that pass in one mode and not in the other: a permission set
	// that does not resolve is one identity to Lint (two entries naming it
	// are duplicates) and none to Render (which reports it unresolved).
	docs = append(docs, corpusDoc{origin: "modes", detail: "unresolved permission set twice", data: map[string]string{
		KeyMapRoles: "- permissionset: NoSuchSet\n  username: a\n  groups: [x]\n- permissionset: NoSuchSet\n  username: b\n  groups: [y]\n"}},
		// Kept as written by a render that keeps what it cannot resolve (the
		// resync loop's), passing there; Lint warns that the rolearn is
		// another permission set's role.
		corpusDoc{origin: "modes", detail: "kept rolearn of another permission set", data: map[string]string{
			KeyMapRoles: "- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Other_0123456789abcdef\n  permissionset: NoSuchSet\n  username: a\n  groups: [x]\n"}})
	cache := newMapCache()
	node := Options{NodeRoleARNs: []string{"arn:aws:iam::111122223333:role/eks-node"}}
	failures := 0
	for _, doc := range docs {
		swapped := maps.Clone(doc.data)
		swapped[KeyMapRoles], swapped[KeyMapUsers] = doc.data[KeyMapUsers], doc.data[KeyMapRoles]
		for name, data := range map[string]map[string]string{"as written": doc.data, "keys swapped": swapped} {
			lintBoth := func(when string) {
				if got, want := lint(data, Options{}, reading{cache: cache}), lint(data, Options{}, reading{whole: true}); !reflect.DeepEqual(got, want) {
					failures++
					t.Errorf("%s %s, %s: Lint %s through the shared cache differs:\n%s\ndocument:\n%s", doc.origin, doc.detail, name, when, resultDiff(got, want), showDoc(data))
				}
			}
			lintBoth("before Render")
			for _, keep := range []bool{false, true} {
				opts := node
				opts.KeepUnresolved = keep
				want, wantErr := render(context.Background(), data, newFakeResolver(), opts, reading{whole: true})
				opts.Cache = cache
				got, gotErr := Render(context.Background(), data, newFakeResolver(), opts)
				if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
					failures++
					t.Errorf("%s %s, %s: Render (KeepUnresolved %v) through the shared cache differs (%v, want %v):\n%s\ndocument:\n%s",
						doc.origin, doc.detail, name, keep, gotErr, wantErr, resultDiff(got, want), showDoc(data))
				}
			}
			lintBoth("after Render")
			if failures >= 5 {
				t.FailNow()
			}
		}
	}
	if len(cache.m) < 1000 {
		t.Fatalf("the corpus put only %d item texts in the cache: nothing was shared", len(cache.m))
	}
}

// TestItemCacheIsUsed: a second reading of the same document reads no item
// again, and an edit reads only the items it changed — up to an aws-auth
// at the 1 MiB limit, which is read item by item too.
func TestItemCacheIsUsed(t *testing.T) {
	for _, size := range []int{100, benchMax} {
		data, count := benchDocument(size)
		cache := newMapCache()
		LintWithOptions(data, Options{Cache: cache})
		first := cache.adds
		if first < count {
			t.Fatalf("%d entries: the first reading added %d items to the cache; want one per item", count, first)
		}
		LintWithOptions(data, Options{Cache: cache})
		if cache.adds != first {
			t.Fatalf("%d entries: reading the same document again read %d items", count, cache.adds-first)
		}
		res, err := Render(context.Background(), benchEdit(data, 3), benchResolver{}, Options{Cache: cache})
		if err != nil || res.Findings.HasErrors() {
			t.Fatalf("%d entries: the edit is refused: %v %v", count, err, res.Findings.Errors())
		}
		if n := cache.adds - first; n < 1 || n > 3 {
			t.Fatalf("%d entries: rendering an edit of one entry read %d items; want the edited item and its resolved text", count, n)
		}
	}
}

// TestFindingsBounded: a document with 200,000 broken entries keeps
// at most MaxFindings of them and says the rest was not checked; findings
// past the bound are counted, and an error among them still refuses.
func TestFindingsBounded(t *testing.T) {
	for name, text := range map[string]string{
		"item by item": strings.Repeat("-\n", 200_000),
		"whole":        "# &anchor keeps it whole\n" + strings.Repeat("-\n", 200_000),
		// Empty mappings, too, are found as they are read, not later in
		// validation: the reading stops at the bound.
		"empty mappings": strings.Repeat("- {}\n", 200_000),
	} {
		res := Lint(map[string]string{KeyMapRoles: text})
		last := res.Findings[len(res.Findings)-1]
		if len(res.Findings) != MaxFindings+1 || last.Reason != "TooManyProblems" || last.Severity != SeverityError ||
			!strings.Contains(last.Message, fmt.Sprintf("first %d of 200000 entries", MaxFindings)) {
			t.Fatalf("%s: %d findings, last %s", name, len(res.Findings), last)
		}
		if res.Findings[0].Reason != "EmptyEntry" || *res.Findings[MaxFindings-1].Index != MaxFindings-1 {
			t.Fatalf("%s: the findings kept are not the first ones: %s ... %s", name, res.Findings[0], res.Findings[MaxFindings-1])
		}
	}
	v := &validator{}
	for i := range MaxFindings + 5 {
		v.add(Finding{Severity: SeverityWarning, Reason: fmt.Sprint("W", i)})
	}
	v.add(Finding{Severity: SeverityError, Reason: "Late"})
	v.validateData(map[string]string{}, 0, nil)
	if len(v.findings) != MaxFindings+1 || !v.findings.HasErrors() || !strings.Contains(v.findings[MaxFindings].Message, "6 more problems (1 of them errors)") {
		t.Fatalf("an error past the bound must still refuse: %d findings, last %s", len(v.findings), v.findings[len(v.findings)-1])
	}
}

// Entries read item by item share the cached shapes (entry.own reads an
// item's tree again before an edit): renders running at once through one
// cache must not touch each other's (go test -race checks) and must give
// what a render without the cache gives.
func TestSharedTreesConcurrently(t *testing.T) {
	ctx := context.Background()
	data, _ := benchDocument(200)
	opts := Options{NodeRoleARNs: []string{"arn:aws:iam::" + benchAccount + ":role/eks-node", "arn:aws:iam::" + benchAccount + ":role/other-node"}}
	cached := opts
	cached.Cache = newMapCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				edit := benchEdit(data, g*100+i%3) // the same edits too, from several goroutines
				got, err := Render(ctx, edit, benchResolver{}, cached)
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := Render(ctx, edit, benchResolver{}, opts)
				if !reflect.DeepEqual(got.Data, want.Data) || !reflect.DeepEqual(got.Findings, want.Findings) {
					t.Errorf("edit %d: the cached render differs from the uncached one", g*100+i)
				}
			}
		}()
	}
	wg.Wait()
}
