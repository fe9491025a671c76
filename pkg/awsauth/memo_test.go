package awsauth

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"testing"
)

// sameResult reports how got differs from want ("" when it does not).
func sameResult(got, want *Result) string {
	switch {
	case got == nil || want == nil:
		if got != want {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	case !maps.Equal(got.Data, want.Data):
		return "data differs"
	case len(got.Changed) != len(want.Changed) || len(got.Changed) > 0 && !reflect.DeepEqual(got.Changed, want.Changed):
		return fmt.Sprintf("changed %v, want %v", got.Changed, want.Changed)
	case !reflect.DeepEqual(got.Findings, want.Findings):
		return fmt.Sprintf("findings\n  %v\nwant\n  %v", got.Findings.Strings(), want.Findings.Strings())
	case !reflect.DeepEqual(got.Roles, want.Roles) || !reflect.DeepEqual(got.Users, want.Users):
		return fmt.Sprintf("mappings %v %v, want %v %v", got.Roles, got.Users, want.Roles, want.Users)
	}
	return ""
}

// memoCorpus is every golden input, documents from the differential
// corpus (clean and broken), and a benchmark document with an edit.
func memoCorpus(t *testing.T, n int) []map[string]string {
	var docs []map[string]string
	files, _ := filepath.Glob("testdata/render/*.txt")
	for _, f := range files {
		docs = append(docs, readGolden(t, f).in)
	}
	gen := newCorpus(t, 7)
	for range n {
		docs = append(docs, gen.next().data)
	}
	data, _ := benchDocument(100)
	docs = append(docs, data, benchEdit(data, 1))
	return docs
}

// TestMemoAgreesWithRender: a Memo gives exactly what Lint and Render give,
// on the first call, on a repeated call, and for the document the mutating
// webhook produced when the validating webhook renders it.
func TestMemoAgreesWithRender(t *testing.T) {
	ctx := context.Background()
	node := Options{NodeRoleARNs: []string{diffNodeRole}}
	var resolver Resolver = newFakeResolver()
	m := NewMemo(0, 0)
	fixedPoints := 0
	for i, data := range memoCorpus(t, 1500) {
		for pass := range 2 {
			want := Lint(data)
			if d := sameResult(m.Lint(data, Options{}), want); d != "" {
				t.Fatalf("doc %d, lint pass %d: %s\n%s", i, pass, d, showDoc(data))
			}
			want, wantErr := Render(ctx, data, resolver, node)
			got, err := m.Render(ctx, data, resolver, node)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("doc %d, pass %d: error %v, want %v", i, pass, err, wantErr)
			}
			if d := sameResult(got, want); d != "" {
				t.Fatalf("doc %d, render pass %d: %s\n%s", i, pass, d, showDoc(data))
			}
			if want == nil || want.Findings.HasErrors() {
				continue
			}
			// What the validating webhook is sent next.
			before := m.Stats().Hits
			wantV, errV := Render(ctx, want.Data, resolver, Options{})
			gotV, err := m.Render(ctx, want.Data, resolver, Options{})
			if fmt.Sprint(err) != fmt.Sprint(errV) {
				t.Fatalf("doc %d: validate error %v, want %v", i, err, errV)
			}
			if d := sameResult(gotV, wantV); d != "" {
				t.Fatalf("doc %d, validate pass %d: %s\n%s", i, pass, d, showDoc(want.Data))
			}
			if m.Stats().Hits > before {
				fixedPoints++
			}
		}
	}
	st := m.Stats()
	t.Logf("memo: %d hits, %d misses, %d mutated documents answered from memory, %d entries, %d bytes", st.Hits, st.Misses, fixedPoints, st.Entries, st.Bytes)
	if fixedPoints == 0 || st.Hits == 0 {
		t.Fatal("the memo never answered from memory")
	}
	if st.Entries > DefaultMemoEntries || st.Bytes > DefaultMemoBytes {
		t.Fatalf("memo over its bounds: %+v", st)
	}
}

// TestMemoAsksTheResolverAgain: a remembered answer is not reused when the
// resolver's answer changed (a permission set was re-provisioned), nor when
// AWS cannot be asked.
func TestMemoAsksTheResolverAgain(t *testing.T) {
	ctx := context.Background()
	fake := newFakeResolver()
	m := NewMemo(0, 0)
	data := rolesOnly("- permissionset: Admin\n  username: admin\n  groups:\n    - system:masters\n")
	res, err := m.Render(ctx, data, fake, Options{})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("render: %v %v", err, res)
	}
	v, err := m.Render(ctx, res.Data, fake, Options{})
	if err != nil || len(v.Changed) != 0 || m.Stats().Hits != 1 {
		t.Fatalf("the mutated document was not answered from memory: %v %v %+v", err, v, m.Stats())
	}

	fake.roles["Admin"] = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_aaaaaaaaaaaaaaaa"
	v, err = m.Render(ctx, res.Data, fake, Options{})
	want, _ := Render(ctx, res.Data, fake, Options{})
	if err != nil || len(v.Changed) != 1 || sameResult(v, want) != "" {
		t.Fatalf("a changed suffix was answered from memory: %v %v", err, v)
	}

	fake.iamErr = errIAMDown
	_, err = m.Render(ctx, res.Data, fake, Options{})
	if _, wantErr := Render(ctx, res.Data, fake, Options{}); fmt.Sprint(err) != fmt.Sprint(wantErr) || err == nil {
		t.Fatalf("IAM down: error %v, want %v", err, wantErr)
	}
	if _, err := m.Render(ctx, res.Data, nil, Options{}); err == nil {
		t.Fatal("no resolver: answered from memory")
	}
}

// TestMemoBounds: the memo forgets the least recently used answers first
// and never holds more than it may.
func TestMemoBounds(t *testing.T) {
	m := NewMemo(3, 1<<20)
	docs := make([]map[string]string, 5)
	for i := range docs {
		docs[i] = rolesOnly(fmt.Sprintf("- rolearn: arn:aws:iam::111122223333:role/r%d\n  username: u\n", i))
	}
	for _, d := range docs[:3] {
		m.Lint(d, Options{})
	}
	m.Lint(docs[0], Options{}) // docs[0] is now the most recent
	m.Lint(docs[3], Options{}) // forgets docs[1]
	hits := m.Stats().Hits
	m.Lint(docs[0], Options{})
	m.Lint(docs[1], Options{})
	if st := m.Stats(); st.Hits != hits+1 || st.Entries != 3 {
		t.Fatalf("LRU order not kept: %+v (hits before %d)", st, hits)
	}
	small := NewMemo(10, 1000)
	big, _ := benchDocument(100)
	small.Lint(big, Options{})
	if st := small.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("an answer larger than the memo was kept: %+v", st)
	}
}
