package awsauth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Memo remembers what Lint and Render concluded about documents seen
// recently, so that the same document is not parsed and judged again. An
// admission request carries the stored object (oldObject) — the same from
// one edit to the next — and the validating webhook is sent exactly what the
// mutating webhook just produced; a Memo answers both from memory.
//
// It is exact, not a heuristic: an answer is keyed by a hash (SHA-256) of
// everything Lint or Render reads — every data key and value and every
// option — and a Render answer also records what it asked the Resolver and
// what the Resolver said; it is reused only when the Resolver, asked the
// same questions again (a cache hit there: no AWS call), gives the same
// answers. Only answers that change nothing are remembered (a Render whose
// Result has Changed keys is recomputed each time), and each is remembered
// with a small copy of its findings and mappings, never the parsed tree.
//
// Results from a Memo share their Findings, Roles and Users with other
// callers: treat them as read-only. A Memo is safe for concurrent use.
type Memo struct {
	maxEntries int
	maxBytes   int

	mu      sync.Mutex
	entries map[memoKey]*list.Element
	order   *list.List // front: most recently used
	bytes   int

	hits, misses atomic.Uint64
}

// Default bounds of a Memo: a few answers about documents near the
// ConfigMap size limit (a 1 MiB aws-auth's findings and mappings take about
// 1.5 MiB), many about ordinary ones.
const (
	DefaultMemoEntries = 64
	DefaultMemoBytes   = 8 << 20
)

// NewMemo returns a Memo holding at most maxEntries answers and about
// maxBytes of them (zero values pick the defaults).
func NewMemo(maxEntries, maxBytes int) *Memo {
	if maxEntries <= 0 {
		maxEntries = DefaultMemoEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMemoBytes
	}
	return &Memo{maxEntries: maxEntries, maxBytes: maxBytes, entries: map[memoKey]*list.Element{}, order: list.New()}
}

// MemoStats counts answers given from memory and computed.
type MemoStats struct {
	Hits, Misses uint64
	Entries      int
	Bytes        int
}

// Stats returns the counters.
func (m *Memo) Stats() MemoStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemoStats{Hits: m.hits.Load(), Misses: m.misses.Load(), Entries: m.order.Len(), Bytes: m.bytes}
}

type memoKey [sha256.Size]byte

type memoEntry struct {
	key      memoKey
	size     int
	findings Findings
	roles    []Mapping
	users    []Mapping
	accounts []string
	// loaded is the authenticator's reading, for Load; nil otherwise.
	loaded *Loaded
	// asked is what Render asked the Resolver and was told; nil for Lint.
	asked *lookups
}

// Lint is Lint(data) (LintWithOptions with opts), from memory when the same
// data was linted before.
func (m *Memo) Lint(data map[string]string, opts Options) *Result {
	if res, ok := m.RecallLint(data, opts); ok {
		return res
	}
	key := memoKeyOf("lint", data, Options{ExtraBytes: opts.ExtraBytes})
	m.misses.Add(1)
	res := LintWithOptions(data, opts)
	m.put(newMemoEntry(key, res, nil))
	return res
}

// RecallLint is Lint(data, opts) from memory only: the remembered answer
// and true, or nil and false when it would have to be computed (nothing is
// computed here).
func (m *Memo) RecallLint(data map[string]string, opts Options) (*Result, bool) {
	if e := m.get(memoKeyOf("lint", data, Options{ExtraBytes: opts.ExtraBytes})); e != nil {
		m.hits.Add(1)
		return e.result(data), true
	}
	return nil, false
}

// RecallRender is Render(ctx, data, r, opts) from memory only: the
// remembered answer and true when Render would give it (the same data and
// options, and the same answers from r), or nil and false when it would
// have to be computed (nothing is computed here).
func (m *Memo) RecallRender(ctx context.Context, data map[string]string, r Resolver, opts Options) (*Result, bool) {
	if e := m.get(memoKeyOf("render", data, opts)); e != nil && e.asked.sameAnswers(ctx, r) {
		m.hits.Add(1)
		return e.result(data), true
	}
	return nil, false
}

// Render is Render(ctx, data, r, opts), from memory when the same data was
// found before, with the same options and the same answers from r, to need
// no change. When Render changes the document, the changed document is
// checked — without parsing it again — to need no further change, and if so
// is remembered: it is what the validating webhook is sent next.
func (m *Memo) Render(ctx context.Context, data map[string]string, r Resolver, opts Options) (*Result, error) {
	if res, ok := m.RecallRender(ctx, data, r, opts); ok {
		return res, nil
	}
	key := memoKeyOf("render", data, opts)
	m.misses.Add(1)
	rec := &lookups{r: r}
	var asker Resolver = rec
	if r == nil {
		asker = nil // Render says that it needs one
	}
	out, err := render(ctx, data, asker, opts)
	if err != nil || !rec.reusable() {
		return resultOf(out), err
	}
	res := out.res
	if len(res.Changed) == 0 {
		e := newMemoEntry(key, res, rec)
		m.put(e)
		if len(opts.NodeRoleARNs) > 0 {
			// Node roles only ever add entries: a document that needed none
			// renders the same without them, as the validating webhook
			// renders it.
			other := *e
			other.key = memoKeyOf("render", data, Options{KeepUnresolved: opts.KeepUnresolved, ExtraBytes: opts.ExtraBytes})
			m.put(&other)
		}
		return res, nil
	}
	// The validating webhook renders the mutated document with no node
	// roles to add and nothing kept unresolved; see whether that would
	// change it again.
	next := Options{ExtraBytes: opts.ExtraBytes}
	if out.final != nil && len(out.parseFindings) == 0 && tooLarge(res.Data, next) == nil {
		rec2 := &lookups{r: r}
		rw := &rewriter{opts: next, editors: map[string]*editor{}, sections: out.final}
		if rw.resolve(ctx, rec2) == nil && rec2.reusable() {
			rw.rewriteEntries()
			if len(rw.findings) == 0 && !rw.changedAny() {
				fixed := &Result{Data: res.Data, Findings: out.validation, Roles: res.Roles, Users: res.Users, Accounts: res.Accounts}
				m.put(newMemoEntry(memoKeyOf("render", res.Data, next), fixed, rec2))
			}
		}
	}
	return res, nil
}

func (rw *rewriter) changedAny() bool {
	for _, ed := range rw.editors {
		if ed.changed {
			return true
		}
	}
	return false
}

func newMemoEntry(key memoKey, res *Result, asked *lookups) *memoEntry {
	e := &memoEntry{key: key, findings: res.Findings, roles: res.Roles, users: res.Users, accounts: res.Accounts, asked: asked}
	e.size = 256
	for _, a := range e.accounts {
		e.size += 16 + len(a)
	}
	for _, set := range [][]Mapping{e.roles, e.users} {
		for _, mp := range set {
			e.size += 128 + len(mp.ARN) + len(mp.PermissionSet) + len(mp.Username)
			for _, g := range mp.Groups {
				e.size += 16 + len(g)
			}
		}
	}
	for _, f := range e.findings {
		e.size += 160 + len(f.Message) + len(f.Hint) + len(f.Entry) + len(f.Field) + len(f.Key) + len(f.Reason)
	}
	if asked != nil {
		for _, n := range asked.names {
			e.size += 16 + len(n)
		}
		for k, v := range asked.lookup.ARNs {
			e.size += 32 + len(k) + len(v)
		}
		for _, n := range asked.lookup.Existing {
			e.size += 16 + len(n)
		}
	}
	return e
}

func (e *memoEntry) result(data map[string]string) *Result {
	return &Result{Data: data, Findings: e.findings, Roles: e.roles, Users: e.users, Accounts: e.accounts}
}

// Load is LoadAsAuthenticator(data), from memory when the same data was
// loaded before: the lockout guard reads the stored object (oldObject),
// which is the same from one edit to the next. The Loaded is shared:
// treat it as read-only.
func (m *Memo) Load(data map[string]string) *Loaded {
	if l, ok := m.RecallLoad(data); ok {
		return l
	}
	m.misses.Add(1)
	l := LoadAsAuthenticator(data)
	e := &memoEntry{key: memoKeyOf("load", data, Options{}), loaded: l, size: 256}
	for _, set := range [][]LoadedMapping{l.Roles, l.Users} {
		for _, mp := range set {
			e.size += 128 + len(mp.ARN) + len(mp.Username)
			for _, g := range mp.Groups {
				e.size += 16 + len(g)
			}
		}
	}
	for _, a := range l.Accounts {
		e.size += 16 + len(a)
	}
	m.put(e)
	return l
}

// RecallLoad is Load from memory only.
func (m *Memo) RecallLoad(data map[string]string) (*Loaded, bool) {
	if e := m.get(memoKeyOf("load", data, Options{})); e != nil && e.loaded != nil {
		m.hits.Add(1)
		return e.loaded, true
	}
	return nil, false
}

func (m *Memo) get(key memoKey) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok {
		return nil
	}
	m.order.MoveToFront(el)
	return el.Value.(*memoEntry)
}

func (m *Memo) put(e *memoEntry) {
	if e.size > m.maxBytes {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.entries[e.key]; ok {
		m.bytes -= el.Value.(*memoEntry).size
		el.Value = e
		m.bytes += e.size
		m.order.MoveToFront(el)
	} else {
		m.entries[e.key] = m.order.PushFront(e)
		m.bytes += e.size
	}
	for m.order.Len() > m.maxEntries || m.bytes > m.maxBytes {
		last := m.order.Back()
		old := last.Value.(*memoEntry)
		m.order.Remove(last)
		delete(m.entries, old.key)
		m.bytes -= old.size
	}
}

// memoKeyOf hashes everything Lint or Render reads: the options and every
// data key and value, each length-prefixed so no two inputs share a key.
func memoKeyOf(kind string, data map[string]string, opts Options) memoKey {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(kind)
	binary.BigEndian.PutUint64(n[:], uint64(opts.ExtraBytes))
	h.Write(n[:])
	if opts.KeepUnresolved {
		write("keep-unresolved")
	} else {
		write("")
	}
	binary.BigEndian.PutUint64(n[:], uint64(len(opts.NodeRoleARNs)))
	h.Write(n[:])
	for _, a := range opts.NodeRoleARNs {
		write(a)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	binary.BigEndian.PutUint64(n[:], uint64(len(keys)))
	h.Write(n[:])
	for _, k := range keys {
		write(k)
		write(data[k])
	}
	var key memoKey
	h.Sum(key[:0])
	return key
}

// lookups is a Resolver that passes every question on to r and records the
// questions and answers (Render asks each at most once).
type lookups struct {
	r Resolver

	accountAsked bool
	account      Account
	accountErr   error

	lookupAsked bool
	names       []string
	lookup      PermissionSetLookup
	lookupErr   error
}

func (l *lookups) Account(ctx context.Context) (Account, error) {
	a, err := l.r.Account(ctx)
	l.accountAsked, l.account, l.accountErr = true, a, err
	return a, err
}

func (l *lookups) PermissionSetRoles(ctx context.Context, names []string) (PermissionSetLookup, error) {
	ans, err := l.r.PermissionSetRoles(ctx, names)
	l.lookupAsked, l.names, l.lookup, l.lookupErr = true, slices.Clone(names), ans, err
	l.lookup.ARNs = maps.Clone(ans.ARNs)
	l.lookup.Existing = slices.Clone(ans.Existing)
	l.lookup.Ambiguous = maps.Clone(ans.Ambiguous)
	return ans, err
}

// reusable reports whether the answers may be given again: every question
// was answered, none from a stale listing.
func (l *lookups) reusable() bool {
	return l.accountErr == nil && l.lookupErr == nil && l.lookup.Stale == nil
}

// sameAnswers asks r the recorded questions again and reports whether the
// answers are the same. A nil l (Lint) asked nothing.
func (l *lookups) sameAnswers(ctx context.Context, r Resolver) bool {
	if l == nil {
		return true
	}
	if (l.accountAsked || l.lookupAsked) && r == nil {
		return false
	}
	if l.accountAsked {
		if a, err := r.Account(ctx); err != nil || a != l.account {
			return false
		}
	}
	if l.lookupAsked {
		ans, err := r.PermissionSetRoles(ctx, l.names)
		if err != nil || ans.Stale != nil || !maps.Equal(ans.ARNs, l.lookup.ARNs) || !slices.Equal(ans.Existing, l.lookup.Existing) ||
			!maps.EqualFunc(ans.Ambiguous, l.lookup.Ambiguous, slices.Equal[[]string]) {
			return false
		}
	}
	return true
}
