package awsauth

import (
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"

	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
)

// The EKS authenticator's own parser (aws-iam-authenticator,
// pkg/mapper/configmap.ParseMap) is the judge: whatever we admit, it must
// load in full, exactly as the engine thinks it will.

// Environment variables of the long form (make fuzz sets them).
const (
	diffNEnv    = "AWS_AUTH_WEBHOOK_DIFF_N"    // corpus size; default diffShortN
	diffSeedEnv = "AWS_AUTH_WEBHOOK_DIFF_SEED" // generator seed; default 1
	diffShortN  = 10000
)

// diffNodeRole is the node role Render is asked to keep mapped.
const diffNodeRole = "arn:aws:iam::111122223333:role/eks-node"

// justifiedRejections are the rules that may reject a document the
// authenticator would load without any error. Each says why loading it
// "in full" is still wrong. A loadable document rejected by a rule missing
// here fails the test: either the rule is too strict, or it needs a reason.
var justifiedRejections = map[string]string{
	// An unknown field holding lists 33 levels deep loads (the field is
	// ignored); refusing it bounds the memory every reading costs.
	"NestedTooDeep": "a value nested past 32 levels is no mapping, and costs memory in proportion to its depth",
	// The authenticator keys role mappings by lowercased ARN, so of two
	// entries for one role only the last survives, silently; two user
	// entries differing in case both load and which one matches is random.
	"DuplicateARN": "duplicate ARNs load, but one entry silently overrides the other",
	// `username: a` twice, or `rolearn` next to `RoleArn`: the JSON decode
	// keeps the last value; the first is silently lost.
	"DuplicateField": "a key written twice loads, but only its last value counts",
	// ParseMap takes any string as an ARN. A pathed role ARN, an STS
	// assumed-role ARN, a user ARN in mapRoles, a bad account or partition:
	// all load, and none ever matches a caller.
	"InvalidARN": "a malformed, pathed, assumed-role or wrong-kind ARN loads but never matches",
	// goyaml reads the first document only: entries after '---' are
	// silently dropped, while the ConfigMap shows them to every reader.
	"MultipleDocuments": "only the first YAML document loads; entries after '---' are silently dropped",
	// `mapusers`, `map_roles`, "mapRoles ", a look-alike spelling, or
	// any other key holding entries: not read at all, "loaded in full" as
	// nothing.
	"IgnoredKey": "a data key the authenticator does not read (a near miss, or one holding entries) is silently ignored",
	// "system:bootstrappers - system:nodes" is one group name to the
	// authenticator: it loads, and grants neither group.
	"InvalidGroups": "a group with whitespace (an indentation accident) or an empty group loads but grants nothing meant",
	// mapAccounts takes any string; a non-ID never matches an account.
	"InvalidAccountID": "a mapAccounts item that is not a 12-digit ID loads but never matches",
	// The sso: matcher is off on EKS: the entry loads and maps nobody.
	"UnsupportedSSOMatcher": "the sso: matcher is off on EKS; the entry loads and matches nobody",
	// The authenticator ignores permissionset; the webhook keeps it as the
	// record of intent. A name that cannot exist, one outside mapRoles, or
	// one without a role in the account would leave a rolearn that the
	// resync loop cannot keep current.
	"InvalidPermissionSet":    "an invalid permission-set name can never be resolved or kept current",
	"PermissionSetInMapUsers": "permissionset means nothing in mapUsers; the entry is in the wrong key",
	"UnknownPermissionSet":    "a permission set without a role in the account leaves a stale rolearn",
	// Merged fields and aliased ARNs load, but the webhook edits each
	// entry where it is written: it cannot resolve, strip or check them
	// for that entry alone.
	"MergeKey":  "fields merged with '<<' load, but cannot be checked or rewritten in place",
	"YAMLAlias": "an aliased rolearn/userarn/permissionset loads, but cannot be rewritten in place",
	// !!binary loads as its decoded bytes, which nobody reading aws-auth sees.
	"YAMLTag": "a !!binary value loads, but hides what it maps from every reader",
	// goyaml.v2 and goyaml.v3 disagree about the text (or v3 refuses what v2
	// takes): the authenticator loads its own reading, which is not the
	// structure the editor sees and the webhook would edit.
	"ReadDifferently": "the authenticator's YAML 1.1 reading differs from the document's structure",
	"MalformedYAML":   "YAML 1.2 (the editor's reading) refuses the text that YAML 1.1 accepts",
	// `group:` or `usrname:` is ignored: the entry loads without its groups
	// or username.
	"MisspeltKey": "a misspelt field loads as nothing: the entry silently lacks that field",
	// A zero-width space, a soft hyphen, a control character or an odd
	// space in an ARN, username or group loads, as a name that looks right
	// and matches nobody.
	"InvisibleCharacter": "an invisible or control character loads, in a name that looks right and matches nobody",
	// A Cyrillic "а" in system:mаsters, a fullwidth letter or a decomposed
	// accent loads, as a name that is not the one it looks like.
	"ConfusableCharacter": "a look-alike character loads, in a name that is not the one it looks like",
	// NEL, LS, PS and a lone CR are line breaks to the authenticator's
	// parser but not on screen: it loads what readers see as a comment.
	"LineBreakCharacter": "a line break the reader cannot see loads what reads as a comment",
	// A bidi control loads, but reorders what readers see of the line.
	"BidiControl": "a bidirectional control loads, but shows the line in another order than it is read",
	// A control character the parser refuses breaks the key, unless it is
	// where the authenticator stops reading first (after a second '---'):
	// then it loads, and the text hides what no reader can see.
	"ForbiddenCharacter": "a control character loads only where the authenticator does not read, and hides what follows from every reader",
	// `[]: x` is a mapping, but goyaml.v2 reads it as an empty list: the
	// authenticator loads nothing, without an error, from a key that is
	// not a list at all.
	"NotAList": "a key that is not a list can still read as an empty list to goyaml.v2",
	// The authenticator ignores permissionset, so `permissionset: on` next
	// to a rolearn loads; but it is the webhook's record of intent, and a
	// boolean or number names no permission set. (WrongType on any other
	// field is a decode error in the authenticator, never loadable.)
	"WrongType.permissionset": "a permissionset YAML 1.1 reads as a boolean or number names no permission set",
	// The authenticator ignores accessPolicies (an unknown key to it), so
	// any value loads; but it is what the access entries are made from, and
	// a policy EKS does not have, an empty or bad namespace list would fail
	// there or grant other access than written.
	"InvalidAccessPolicies": "accessPolicies is ignored by the authenticator but drives the access entries; a bad one would be refused by EKS or grant other access",
}

// ruleKey names the rule behind a finding, per field where the
// justification depends on it.
func ruleKey(f Finding) string {
	if _, ok := justifiedRejections[f.Reason+"."+f.Field]; ok {
		return f.Reason + "." + f.Field
	}
	return f.Reason
}

// judgement is the outcome for one document.
type judgement struct {
	admitted bool
	loadable bool     // rejected, but ParseMap loads it without error
	reasons  []string // error reasons, when rejected
	damage   string   // when admitted: how the authenticator disagrees
}

var quietAuthenticator sync.Once

// loaded is what the authenticator's parser loads from a document.
type loaded struct {
	users, roles []mappingView
	accounts     []string
	err          error
}

// parseMap runs the authenticator's parser without its log noise.
func parseMap(data map[string]string) loaded {
	quietAuthenticator.Do(func() { logrus.SetOutput(io.Discard) })
	u, r, a, err := configmap.ParseMap(data)
	l := loaded{accounts: a, err: err}
	for _, m := range u {
		l.users = append(l.users, mappingView{arn: m.UserARN, username: m.Username, groups: m.Groups})
	}
	for _, m := range r {
		l.roles = append(l.roles, mappingView{arn: m.RoleARN, username: m.Username, groups: m.Groups})
	}
	return l
}

type mappingView struct {
	arn, username string
	groups        []string
}

// judgeDoc decides a corpus document; for one made from an intended
// document by a change whose meaning is known (a key renamed, a character
// slipped in), an admitted result must also load exactly what the intended
// document loads.
func judgeDoc(doc corpusDoc) judgement {
	j := judge(doc.data)
	if !j.admitted || j.damage != "" || doc.intent == nil {
		return j
	}
	j.damage = intentDamage(doc.data, doc.intent)
	return j
}

// intentDamage compares what the authenticator loads from the rendered
// document with what it loads from the rendered intended one ("" when the
// same, or when the intended document is itself rejected).
func intentDamage(data, intent map[string]string) string {
	want, ok := renderedLoad(intent)
	if !ok {
		return ""
	}
	got, _ := renderedLoad(data)
	if got != want {
		return fmt.Sprintf("the authenticator loads\n%s\nwhere the document as meant loads\n%s", got, want)
	}
	return ""
}

// renderedLoad renders a document and describes what the authenticator
// loads from the result, order aside; ok is false when it is rejected.
func renderedLoad(data map[string]string) (string, bool) {
	if Lint(data).Findings.HasErrors() {
		return "", false
	}
	res, err := Render(context.Background(), data, newFakeResolver(), Options{NodeRoleARNs: []string{diffNodeRole}})
	if err != nil || res.Findings.HasErrors() {
		return "", false
	}
	l := parseMap(res.Data)
	var lines []string
	for _, set := range []struct {
		key string
		ms  []mappingView
	}{{KeyMapRoles, l.roles}, {KeyMapUsers, l.users}} {
		for _, m := range set.ms {
			lines = append(lines, fmt.Sprintf("  %s %q as %q in %q", set.key, strings.ToLower(m.arn), m.username, m.groups))
		}
	}
	for _, a := range l.accounts {
		lines = append(lines, fmt.Sprintf("  %s %q", KeyMapAccounts, a))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), true
}

// loaderDiff compares LoadAsAuthenticator, which the lockout guard judges
// stored objects with, against the authenticator's own ParseMap.
func loaderDiff(data map[string]string) string {
	want := parseMap(data)
	got := LoadAsAuthenticator(data)
	if (want.err != nil) != (len(got.Errors) > 0) {
		return fmt.Sprintf("ParseMap error %v, LoadAsAuthenticator errors %v", want.err, got.Errors)
	}
	view := func(ms []LoadedMapping) []mappingView {
		var out []mappingView
		for _, m := range ms {
			out = append(out, mappingView{arn: m.ARN, username: m.Username, groups: m.Groups})
		}
		return out
	}
	if a, b := fmt.Sprintf("%q", view(got.Roles)), fmt.Sprintf("%q", want.roles); a != b {
		return fmt.Sprintf("roles: LoadAsAuthenticator %s, ParseMap %s", a, b)
	}
	if a, b := fmt.Sprintf("%q", view(got.Users)), fmt.Sprintf("%q", want.users); a != b {
		return fmt.Sprintf("users: LoadAsAuthenticator %s, ParseMap %s", a, b)
	}
	if a, b := fmt.Sprintf("%q", got.Accounts), fmt.Sprintf("%q", want.accounts); a != b && !(len(got.Accounts) == 0 && len(want.accounts) == 0) {
		return fmt.Sprintf("accounts: LoadAsAuthenticator %s, ParseMap %s", a, b)
	}
	return ""
}

// judge decides one document: our verdict (Lint, then Render with a fake
// resolver), and the authenticator's reading of what we would store.
func judge(data map[string]string) judgement {
	lint := Lint(data)
	if lint.Findings.HasErrors() {
		return rejected(data, lint.Findings)
	}
	fake := newFakeResolver()
	res, err := Render(context.Background(), data, fake, Options{NodeRoleARNs: []string{diffNodeRole}})
	if err != nil {
		return judgement{admitted: true, damage: "lint admits but render fails: " + err.Error()}
	}
	if res.Findings.HasErrors() {
		return rejected(data, res.Findings)
	}
	return judgement{admitted: true, damage: damage(lint, res, fake)}
}

func rejected(data map[string]string, fs Findings) judgement {
	seen := map[string]bool{}
	var reasons []string
	for _, f := range fs.Errors() {
		if k := ruleKey(f); !seen[k] {
			seen[k] = true
			reasons = append(reasons, k)
		}
	}
	sort.Strings(reasons)
	j := judgement{reasons: reasons}
	if !seen["TooLarge"] {
		j.loadable = parseMap(data).err == nil
	}
	return j
}

// damage returns how the authenticator's reading of the rendered data
// differs from what the engine admitted, or "".
func damage(lint, res *Result, fake *fakeResolver) string {
	l := parseMap(res.Data)
	if l.err != nil {
		return fmt.Sprintf("the authenticator reports: %v", l.err)
	}
	if len(l.roles) != len(res.Roles) || len(l.users) != len(res.Users) {
		return fmt.Sprintf("the authenticator loads %d roles and %d users; the document has %d and %d entries",
			len(l.roles), len(l.users), len(res.Roles), len(res.Users))
	}
	if len(res.Roles) < len(lint.Roles) || len(res.Roles) > len(lint.Roles)+1 || len(res.Users) != len(lint.Users) {
		return fmt.Sprintf("render turned %d roles and %d users into %d and %d", len(lint.Roles), len(lint.Users), len(res.Roles), len(res.Users))
	}
	if n := listLength(res.Data[KeyMapAccounts]); len(l.accounts) != n {
		return fmt.Sprintf("the authenticator loads %d accounts; mapAccounts has %d items", len(l.accounts), n)
	}
	for _, a := range l.accounts {
		if !iamarn.ValidAccountID(a) {
			return fmt.Sprintf("mapAccounts loads %q, which is not an account ID", a)
		}
	}
	if d := compareMappings("mapRoles", l.roles, res.Roles, "role", fake); d != "" {
		return d
	}
	if d := compareMappings("mapUsers", l.users, res.Users, "user", fake); d != "" {
		return d
	}
	nodeMapped := false
	for _, m := range l.roles {
		nodeMapped = nodeMapped || strings.EqualFold(m.arn, diffNodeRole)
	}
	if !nodeMapped {
		return "the node role is not mapped"
	}
	return ""
}

// listLength counts the items of a key's top-level list, as written.
func listLength(text string) int {
	if isSkippable(text) {
		return 0
	}
	var doc yaml.Node
	if yaml.Unmarshal([]byte(text), &doc) != nil {
		return -1
	}
	if root := documentRoot(&doc); root != nil {
		return len(root.Content)
	}
	return 0
}

func compareMappings(key string, got []mappingView, want []Mapping, kind string, fake *fakeResolver) string {
	seen := map[string]int{}
	for i, g := range got {
		w := want[i]
		if g.arn == "" {
			return fmt.Sprintf("%s[%d] loads without an ARN", key, i)
		}
		if g.arn != w.ARN || g.username != w.Username || strings.Join(g.groups, "\x00") != strings.Join(w.Groups, "\x00") {
			return fmt.Sprintf("%s[%d]: the authenticator loads %+v, the engine expects %+v", key, i, g, w)
		}
		a, err := parseIAMARN(g.arn, false)
		switch {
		case err != nil:
			return fmt.Sprintf("%s[%d]: %v", key, i, err)
		case kind == "role" && (a.Kind != "role" || a.Path != "/"):
			return fmt.Sprintf("%s[%d]: %q is not a canonical role ARN, so it never matches", key, i, g.arn)
		case kind == "user" && a.Kind == "role":
			return fmt.Sprintf("%s[%d]: %q is a role ARN in mapUsers", key, i, g.arn)
		}
		if w.PermissionSet != "" && g.arn != fake.roles[w.PermissionSet] {
			return fmt.Sprintf("%s[%d]: permission set %q loads as %q, not its role %q", key, i, w.PermissionSet, g.arn, fake.roles[w.PermissionSet])
		}
		id := strings.ToLower(g.arn)
		if j, dup := seen[id]; dup {
			return fmt.Sprintf("%s[%d] and [%d] both map %s: one silently overrides the other", key, j, i, g.arn)
		}
		seen[id] = i
	}
	return ""
}

// tally counts the outcomes over a corpus.
type tally struct {
	mu                           sync.Mutex
	corpus, admitted, rejected   int
	loadable, damagedN           int
	loadableBy                   map[string]int
	damaged                      []string // the first few, for the report
	unjustified                  []string
	loaderMismatches             []string
	rejectedBy, origins, admitBy map[string]int
}

func (t *tally) add(doc corpusDoc, j judgement, loader string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if loader != "" && len(t.loaderMismatches) < 10 {
		t.loaderMismatches = append(t.loaderMismatches, fmt.Sprintf("%s (%s %s):\n%s", loader, doc.origin, doc.detail, showDoc(doc.data)))
	}
	t.corpus++
	t.origins[doc.origin]++
	if j.admitted {
		t.admitted++
		t.admitBy[doc.origin]++
		if j.damage != "" {
			t.damagedN++
			if len(t.damaged) < 20 {
				t.damaged = append(t.damaged, fmt.Sprintf("%s (%s %s):\n%s", j.damage, doc.origin, doc.detail, showDoc(doc.data)))
			}
		}
		return
	}
	t.rejected++
	for _, r := range j.reasons {
		t.rejectedBy[r]++
	}
	if !j.loadable {
		return
	}
	t.loadable++
	for _, r := range j.reasons {
		t.loadableBy[r]++
		if _, ok := justifiedRejections[r]; !ok && len(t.unjustified) < 10 {
			t.unjustified = append(t.unjustified, fmt.Sprintf("rule %s rejects a document the authenticator loads in full (%s %s):\n%s", r, doc.origin, doc.detail, showDoc(doc.data)))
		}
	}
}

func showDoc(data map[string]string) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %q\n", k, data[k])
	}
	return b.String()
}

func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestAuthenticatorAgrees is the differential test: over a generated corpus
// (the golden fixtures, systematic mutations of valid documents, random
// documents), whatever we admit the authenticator loads in full, exactly as
// the engine expects. The long form: AWS_AUTH_WEBHOOK_DIFF_N=500000.
func TestAuthenticatorAgrees(t *testing.T) {
	n := envInt(t, diffNEnv, diffShortN)
	seed := uint64(envInt(t, diffSeedEnv, 1))
	tl := &tally{loadableBy: map[string]int{}, rejectedBy: map[string]int{}, origins: map[string]int{}, admitBy: map[string]int{}}

	docs := make(chan corpusDoc, 256)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for doc := range docs {
				tl.add(doc, judgeDoc(doc), loaderDiff(doc.data))
			}
		}()
	}
	gen := newCorpus(t, seed)
	for i := 0; i < n; i++ {
		docs <- gen.next()
	}
	close(docs)
	wg.Wait()

	t.Logf("corpus by origin (admitted/total): %s", formatOrigins(tl.origins, tl.admitBy))
	t.Logf("rejections by rule: %s", formatCounts(tl.rejectedBy))
	t.Logf("rejected although the authenticator loads them in full, by rule: %s", formatCounts(tl.loadableBy))
	t.Logf("differential: corpus=%d admitted=%d rejected=%d rejected-but-loadable=%d admitted-damaged=%d",
		tl.corpus, tl.admitted, tl.rejected, tl.loadable, tl.damagedN)
	for _, d := range tl.damaged {
		t.Errorf("admitted but damaged: %s", d)
	}
	for _, u := range tl.unjustified {
		t.Errorf("%s", u)
	}
	for _, m := range tl.loaderMismatches {
		t.Errorf("LoadAsAuthenticator disagrees with ParseMap: %s", m)
	}
	// A corpus that admits (or rejects) everything proves nothing.
	if tl.admitted < tl.corpus/10 || tl.rejected < tl.corpus/10 {
		t.Errorf("unbalanced corpus: %d admitted, %d rejected of %d", tl.admitted, tl.rejected, tl.corpus)
	}
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func formatOrigins(all, admitted map[string]int) string {
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", k, admitted[k], all[k]))
	}
	return strings.Join(parts, " ")
}

// FuzzAuthenticatorAgrees is the same property over fuzzed mapRoles and
// mapUsers text.
func FuzzAuthenticatorAgrees(f *testing.F) {
	files, _ := filepath.Glob("testdata/render/*.txt")
	for _, file := range files {
		gc := readGolden(f, file)
		f.Add(gc.in[KeyMapRoles], gc.in[KeyMapUsers])
		f.Add(gc.out[KeyMapRoles], gc.out[KeyMapUsers])
	}
	gen := newCorpus(f, 2)
	for range 300 {
		d := gen.next().data
		f.Add(d[KeyMapRoles], d[KeyMapUsers])
	}
	f.Fuzz(func(t *testing.T, mapRoles, mapUsers string) {
		data := map[string]string{KeyMapRoles: mapRoles, KeyMapUsers: mapUsers}
		j := judge(data)
		if j.admitted && j.damage != "" {
			t.Fatalf("admitted but damaged: %s\n%s", j.damage, showDoc(data))
		}
		if j.loadable {
			for _, r := range j.reasons {
				if _, ok := justifiedRejections[r]; !ok {
					t.Fatalf("rule %s rejects a document the authenticator loads in full:\n%s", r, showDoc(data))
				}
			}
		}
	})
}

// ---- the corpus ----

type corpusDoc struct {
	origin string // golden, mutated, random, random+mutation, document
	detail string // the mutations applied
	data   map[string]string
	// intent is the document as meant, when data was made from it by a
	// change whose meaning is known (a data key misspelt, an invisible or
	// look-alike character slipped in); nil when data is what is meant.
	intent map[string]string
}

// corpus generates documents deterministically from a seed: first the
// golden fixtures, then alternately a mutated valid document and a random
// one.
type corpus struct {
	r       *rand.Rand
	goldens []corpusDoc
	bases   []map[string]string
	i       int
}

func newCorpus(t testing.TB, seed uint64) *corpus {
	c := &corpus{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	files, _ := filepath.Glob("testdata/render/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	sort.Strings(files)
	for _, file := range files {
		gc := readGolden(t, file)
		name := filepath.Base(file)
		c.goldens = append(c.goldens, corpusDoc{origin: "golden", detail: name + " in", data: gc.in})
		if len(gc.out) > 0 {
			c.goldens = append(c.goldens, corpusDoc{origin: "golden", detail: name + " out", data: gc.out})
		}
		if len(gc.findings) == 0 || !strings.HasPrefix(gc.findings[0], "error") {
			c.bases = append(c.bases, gc.in)
		}
	}
	c.bases = append(c.bases, handwrittenBases...)
	return c
}

func (c *corpus) next() corpusDoc {
	defer func() { c.i++ }()
	if c.i < len(c.goldens) {
		return c.goldens[c.i]
	}
	r := c.r
	switch c.i % 3 {
	case 0:
		var base map[string]string
		if r.IntN(3) == 0 {
			base = randomDoc(r, true)
		} else {
			base = c.bases[r.IntN(len(c.bases))]
		}
		data, ops := mutate(r, base, 1+r.IntN(3))
		return corpusDoc{origin: "mutated", detail: ops, data: data}
	case 1:
		// The document level: data-key spellings, characters that read
		// differently from how they look, second documents, directives
		// and tags, on a valid document or a mutated one.
		base := c.bases[r.IntN(len(c.bases))]
		if r.IntN(3) == 0 {
			base = randomDoc(r, true)
		}
		if r.IntN(4) == 0 {
			base, _ = mutate(r, base, 1)
		}
		data, intent, op := mutateDocument(r, base)
		return corpusDoc{origin: "document", detail: op, data: data, intent: intent}
	}
	data := randomDoc(r, false)
	if r.IntN(4) == 0 {
		data, ops := mutate(r, data, 1)
		return corpusDoc{origin: "random+mutation", detail: ops, data: data}
	}
	return corpusDoc{origin: "random", data: data}
}

var handwrittenBases = []map[string]string{
	{
		KeyMapRoles: `- rolearn: arn:aws:iam::111122223333:role/eks-node
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- rolearn: arn:aws:iam::111122223333:role/admin
  username: admin:{{SessionName}}
  groups:
    - system:masters
- permissionset: Admin_ReadOnly
  username: "ro:{{SessionName}}"
  groups: [viewers]
`,
		KeyMapUsers: `- userarn: arn:aws:iam::111122223333:user/alice
  username: alice
  groups:
    - system:masters
- userarn: arn:aws:iam::111122223333:user/ops/bob
  username: bob
`,
		KeyMapAccounts: "- \"111122223333\"\n- '444455556666'\n",
	},
	{
		KeyMapRoles: `# SSO
-   permissionset: Dev+Ops      # the platform team
    username: 'devops:{{SessionName}}'
    groups:
    - devops
    - viewers

-   rolearn: "arn:aws:iam::$ACCOUNTID:role/team/ci-deployer"
    username: ci
`,
	},
	{
		KeyMapRoles: "- {rolearn: 'arn:aws-cn:iam::111122223333:role/cn-admin', username: cn-admin, groups: [system:masters]}\n" +
			"- {permissionset: Admin.Ops, username: ops}\n",
		KeyMapUsers: "[{userarn: \"arn:aws:iam::111122223333:root\", username: root, groups: [\"system:masters\"]}]\n",
	},
	{
		KeyMapRoles: "- rolearn: arn:aws:iam::111122223333:role/crlf\r\n  username: crlf\r\n  groups:\r\n    - system:masters\r\n",
		KeyMapUsers: "",
	},
	{
		KeyMapRoles: `---
- RoleArn: arn:aws-us-gov:iam::111122223333:role/gov
  UserName: gov
  Groups: [a, b]
- rolearn: arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef
  permissionset: Admin
  username: admin
`,
	},
}

// ---- random documents ----

var (
	roleNames = []string{"admin", "dev", "eks-node", "ops+team", "a.b", "x_y", "ci@deploy", "n=1,2",
		"AWSReservedSSO_Admin_0123456789abcdef", "ReadOnly"}
	userNames   = []string{"alice", "bob", "ops/carol", "dave.e", "eve+f"}
	partitions  = []string{"aws", "aws", "aws", "aws-cn", "aws-us-gov", "aws-iso"}
	accounts    = []string{"111122223333", "111122223333", "444455556666", AccountIDPlaceholder}
	permSets    = []string{"Admin", "Admin_ReadOnly", "Dev+Ops", "Admin.Ops", "a=b,c@d-e_f", "Admin.Ops2"}
	badPermSets = []string{"Admn", "no such set", "", "ThisNameIsFarTooLongForAPermissionSet"}
	usernames   = []string{"admin", "admin:{{SessionName}}", "system:node:{{EC2PrivateDNSName}}",
		"{{AccountID}}:{{SessionNameRaw}}", "dev-{{AccessKeyID}}", "x:{{Unknown}}", "ops", "a b", "kubernetes-admin"}
	groupNames = []string{"system:masters", "system:bootstrappers", "system:nodes", "viewers", "devops",
		"system:authenticated", "team-a"}
	yaml11Words = []string{"yes", "no", "on", "off", "y", "n", "Y", "N", "true", "False", "~", "null", "Null",
		"0x1F", "1e3", "012", "123", "1_000", ".inf", "-.5", ".nan", "2001-12-14", "0o17", "+12", "0b101", "1:20"}
	strayChars = []string{":", "-", "#", "{", "}", "[", "]", "&", "*", "!", "|", ">", "'", "\"", "%", "@", "`",
		",", "?", "\t", "\n", "\r", " ", "x", "0", "\xff", "\u00a0", "\ufeff", "\x00", "\\", "ſ"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomARN(r *rand.Rand, kind string, i int) string {
	name := pick(r, roleNames)
	if kind == "user" {
		name = pick(r, userNames)
	}
	if r.IntN(3) == 0 {
		name = fmt.Sprintf("%s-%d", strings.ReplaceAll(name, "/", "-"), i)
	}
	a := fmt.Sprintf("arn:%s:iam::%s:%s/%s", pick(r, partitions), pick(r, accounts), kind, name)
	if r.IntN(8) == 0 {
		a = mutateARN(r, a)
	}
	return a
}

// mutateARN returns a pathed, malformed, assumed-role or otherwise odd
// variant of an ARN.
func mutateARN(r *rand.Rand, a string) string {
	parts := strings.SplitN(a, ":", 6)
	if len(parts) != 6 {
		return a + "x"
	}
	res := parts[5]
	slash := strings.IndexByte(res, '/')
	kind, name := res, ""
	if slash >= 0 {
		kind, name = res[:slash], res[slash+1:]
	}
	switch r.IntN(16) {
	case 0:
		parts[5] = kind + "/team/" + name
	case 1:
		parts[5] = kind + "/aws-reserved/sso.amazonaws.com/eu-west-1/" + name
	case 2:
		parts[2], parts[5] = "sts", "assumed-role/"+name+"/session"
	case 3:
		parts[4] = parts[4][:len(parts[4])-1]
	case 4:
		parts[1] = "aws-mars"
	case 5:
		return strings.TrimPrefix(a, "arn:")
	case 6:
		parts[3] = "us-east-1"
	case 7:
		if kind == "role" {
			parts[5] = "user/" + name
		} else {
			parts[5] = "role/" + name
		}
	case 8:
		return strings.ToUpper(a)
	case 9:
		parts[5] = kind + "/"
	case 10:
		parts[5] = kind + "/" + name + "/"
	case 11:
		parts[5] = "group/" + name
	case 12:
		parts[5] = "root"
	case 13:
		return a + " "
	case 14:
		parts[5] = kind + "/" + name + " x"
	case 15:
		parts[5] = kind + "/" + strings.Repeat("n", 65)
	}
	return strings.Join(parts, ":")
}

// scalar renders a value plain, single- or double-quoted.
func scalar(r *rand.Rand, v string) string {
	needs := v == "" || strings.ContainsAny(v, "{}[]#&*!|>'\"%@`,?:") || strings.HasPrefix(v, "-") ||
		strings.HasPrefix(v, " ") || strings.HasSuffix(v, " ")
	style := r.IntN(10)
	if needs && style < 6 {
		style = 9 // usually quote what needs quoting, sometimes not
	}
	switch {
	case style < 6:
		return v
	case style < 8:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return strconv.Quote(v)
}

// accessPolicyItems are items of accessPolicies, valid and not.
var accessPolicyItems = []string{
	"{policy: AmazonEKSViewPolicy}",
	"{policy: AmazonEKSEditPolicy, namespaces: [team-a, 'dev-*']}",
	"{policy: arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy, namespaces: [prod]}",
	"{policy: AmazonEKSClusterAdminPolicy}",
	"{policy: AmazonEKSViewerPolicy}",
	"{policy: AmazonEKSEditPolicy, namespaces: []}",
	"{policy: AmazonEKSEditPolicy, namespaces: [on, 0x1F]}",
	"{policy: AmazonEKSViewPolicy, namespaces: [Team_A]}",
	"{namespaces: [a]}",
	"AmazonEKSViewPolicy",
	"{policy: {name: x}, extra: [1, 2]}",
}

type field struct {
	key    string
	value  string   // a rendered scalar, when list is nil
	list   []string // rendered items
	isList bool
}

func randomEntry(r *rand.Rand, key string, i int) []field {
	var fs []field
	spell := func(k string) string {
		switch r.IntN(40) {
		case 0:
			return strings.ToUpper(k)
		case 1:
			return strings.ToUpper(k[:1]) + k[1:]
		case 2:
			return k[:len(k)-1] // a typo
		}
		return k
	}
	if key == KeyMapRoles {
		switch x := r.IntN(40); {
		case x < 27:
			fs = append(fs, field{key: spell("rolearn"), value: scalar(r, randomARN(r, "role", i))})
		case x < 37:
			ps := pick(r, permSets)
			if r.IntN(15) == 0 {
				ps = pick(r, badPermSets)
			}
			fs = append(fs, field{key: spell("permissionset"), value: scalar(r, ps)})
		case x < 39:
			fs = append(fs, field{key: "permissionset", value: scalar(r, pick(r, permSets))},
				field{key: "rolearn", value: scalar(r, randomARN(r, "role", i))})
		}
	} else if r.IntN(30) != 0 {
		fs = append(fs, field{key: spell("userarn"), value: scalar(r, randomARN(r, "user", i))})
	}
	if r.IntN(10) != 0 {
		u := pick(r, usernames)
		if r.IntN(20) == 0 {
			u = pick(r, yaml11Words)
			fs = append(fs, field{key: spell("username"), value: u})
		} else {
			fs = append(fs, field{key: spell("username"), value: scalar(r, u)})
		}
	}
	if r.IntN(10) < 7 {
		g := field{key: spell("groups"), isList: true}
		for range r.IntN(4) {
			v := pick(r, groupNames)
			if r.IntN(30) == 0 {
				g.list = append(g.list, pick(r, yaml11Words))
				continue
			}
			g.list = append(g.list, scalar(r, v))
		}
		fs = append(fs, g)
	}
	switch r.IntN(30) {
	case 0:
		fs = append(fs, field{key: "userid", value: pick(r, append([]string{"AROAEXAMPLE", "'AIDA1'"}, yaml11Words...))})
	case 1:
		fs = append(fs, field{key: "sso", value: "{permissionSetName: Admin, accountID: '111122223333'}"})
	case 2:
		fs = append(fs, field{key: "description", value: scalar(r, "break-glass")})
	case 3:
		fs = append(fs, field{key: "permissionset", value: scalar(r, pick(r, permSets))})
	case 4, 5, 6:
		// Our own key for access entries: the authenticator must load the
		// entry exactly as if it were not there, valid or not.
		ap := field{key: pick(r, []string{"accessPolicies", "accessPolicies", "accesspolicies"}), isList: true}
		for range 1 + r.IntN(3) {
			ap.list = append(ap.list, pick(r, accessPolicyItems))
		}
		if r.IntN(10) == 0 {
			ap = field{key: "accessPolicies", value: pick(r, []string{"AmazonEKSViewPolicy", "{policy: AmazonEKSViewPolicy}", "~", "yes"})}
		}
		fs = append(fs, ap)
	}
	r.Shuffle(len(fs), func(a, b int) { fs[a], fs[b] = fs[b], fs[a] })
	return fs
}

func randomEntries(r *rand.Rand, key string) string {
	n := r.IntN(6)
	var entries [][]field
	for i := range n {
		entries = append(entries, randomEntry(r, key, i))
	}
	var b strings.Builder
	if r.IntN(8) == 0 {
		b.WriteString("# managed by the platform team\n")
	}
	switch r.IntN(12) {
	case 0: // a flow list
		var items []string
		for _, e := range entries {
			items = append(items, flowEntry(e))
		}
		b.WriteString("[" + strings.Join(items, ", ") + "]\n")
		return b.String()
	}
	dash := strings.Repeat(" ", pick(r, []int{0, 0, 2}))
	gap := pick(r, []int{1, 1, 1, 3})
	keyPad := dash + strings.Repeat(" ", 1+gap)
	groupPad := pick(r, []string{"  ", "  ", ""})
	for _, e := range entries {
		if r.IntN(10) == 0 || len(e) == 0 {
			b.WriteString(dash + "- " + flowEntry(e) + "\n")
			continue
		}
		for j, f := range e {
			pad := keyPad
			if j == 0 {
				pad = dash + "-" + strings.Repeat(" ", gap)
			}
			comment := ""
			if r.IntN(15) == 0 {
				comment = "  # note"
			}
			switch {
			case !f.isList:
				b.WriteString(pad + f.key + ": " + f.value + comment + "\n")
			case len(f.list) == 0 || r.IntN(4) == 0:
				b.WriteString(pad + f.key + ": [" + strings.Join(f.list, ", ") + "]" + comment + "\n")
			default:
				b.WriteString(pad + f.key + ":" + comment + "\n")
				for _, g := range f.list {
					b.WriteString(keyPad + groupPad + "- " + g + "\n")
				}
			}
		}
		if r.IntN(8) == 0 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

func flowEntry(e []field) string {
	var parts []string
	for _, f := range e {
		if f.isList {
			parts = append(parts, f.key+": ["+strings.Join(f.list, ", ")+"]")
		} else {
			parts = append(parts, f.key+": "+f.value)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// randomDoc builds a document; clean ones (mutation bases) use only the
// three keys.
func randomDoc(r *rand.Rand, clean bool) map[string]string {
	data := map[string]string{}
	if r.IntN(10) < 9 {
		data[KeyMapRoles] = randomEntries(r, KeyMapRoles)
	}
	if r.IntN(10) < 5 {
		data[KeyMapUsers] = randomEntries(r, KeyMapUsers)
	}
	if r.IntN(10) < 3 {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			a := pick(r, []string{"111122223333", "444455556666", "012345678901"})
			if r.IntN(10) == 0 {
				a = pick(r, append([]string{"1111", "abc", "1e3", "0x1F"}, yaml11Words...))
			}
			b.WriteString("- " + scalar(r, a) + "\n")
		}
		data[KeyMapAccounts] = b.String()
	}
	if !clean && r.IntN(40) == 0 {
		data[pick(r, []string{"mapusers", "MapRoles", "maproles", "notes"})] = "- userarn: arn:aws:iam::111122223333:user/x\n"
	}
	return data
}

// ---- mutations ----

type mutation struct {
	name string
	fn   func(r *rand.Rand, text string) string
}

var (
	keyLine   = regexp.MustCompile(`(?m)^([ \t]*(?:-[ \t]+)?)([A-Za-z]+)([ \t]*:)`)
	valueLine = regexp.MustCompile(`(?m)(:[ \t]+|^[ \t]*-[ \t]+)([^\s#{}\[\],][^\n#]*?)[ \t]*$`)
	arnToken  = regexp.MustCompile(`arn:[A-Za-z0-9:_+=,.@/$-]*`)
)

func lines(text string) []string { return strings.SplitAfter(text, "\n") }

func pickLine(r *rand.Rand, text string) ([]string, int) {
	ls := lines(text)
	return ls, r.IntN(len(ls))
}

// replaceMatch replaces one random match of re (submatch group) using fn.
func replaceMatch(r *rand.Rand, re *regexp.Regexp, text string, group int, fn func(string) string) string {
	ms := re.FindAllStringSubmatchIndex(text, -1)
	if len(ms) == 0 {
		return text
	}
	m := ms[r.IntN(len(ms))]
	s, e := m[2*group], m[2*group+1]
	if s < 0 {
		return text
	}
	return text[:s] + fn(text[s:e]) + text[e:]
}

var foldRunes = map[rune][]string{'s': {"ſ"}, 'k': {"\u212a"}, 'i': {"ı", "İ"}}

var mutations = []mutation{
	{"indent", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		switch d := pick(r, []int{-2, -1, 1, 2}); {
		case d > 0:
			ls[i] = strings.Repeat(" ", d) + ls[i]
		default:
			for ; d < 0 && strings.HasPrefix(ls[i], " "); d++ {
				ls[i] = ls[i][1:]
			}
		}
		return strings.Join(ls, "")
	}},
	{"keycase", func(r *rand.Rand, text string) string {
		return replaceMatch(r, keyLine, text, 2, func(k string) string {
			switch r.IntN(5) {
			case 0:
				return strings.ToUpper(k)
			case 1:
				return strings.ToUpper(k[:1]) + k[1:]
			case 2: // a Unicode spelling encoding/json folds onto the ASCII one
				var b strings.Builder
				for _, c := range k {
					if alts, ok := foldRunes[c]; ok && r.IntN(2) == 0 {
						b.WriteString(pick(r, alts))
					} else {
						b.WriteRune(c)
					}
				}
				return b.String()
			}
			var b strings.Builder
			for _, c := range k {
				if r.IntN(2) == 0 {
					b.WriteString(strings.ToUpper(string(c)))
				} else {
					b.WriteRune(c)
				}
			}
			return b.String()
		})
	}},
	{"dup-entry", func(r *rand.Rand, text string) string {
		ls := lines(text)
		var starts []int
		for i, l := range ls {
			if strings.HasPrefix(strings.TrimLeft(l, " "), "- ") || strings.TrimSpace(l) == "-" {
				starts = append(starts, i)
			}
		}
		if len(starts) == 0 {
			return text
		}
		k := r.IntN(len(starts))
		end := len(ls)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		block := strings.Join(ls[starts[k]:end], "")
		if !strings.HasSuffix(block, "\n") {
			block += "\n"
		}
		if r.IntN(2) == 0 {
			return strings.Join(ls[:end], "") + block + strings.Join(ls[end:], "")
		}
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		return text + block
	}},
	{"dup-key", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		if m := keyLine.FindStringSubmatch(ls[i]); m != nil {
			pad := strings.Repeat(" ", len(m[1]))
			ls[i] += pad + m[2] + ": " + pick(r, []string{"dup", "arn:aws:iam::111122223333:role/dup", "[dup]"}) + "\n"
		}
		return strings.Join(ls, "")
	}},
	{"arn", func(r *rand.Rand, text string) string {
		return replaceMatch(r, arnToken, text, 0, func(a string) string { return mutateARN(r, a) })
	}},
	{"stray", func(r *rand.Rand, text string) string {
		var bounds []int
		for i := range text {
			bounds = append(bounds, i)
		}
		bounds = append(bounds, len(text))
		at := pick(r, bounds)
		return text[:at] + pick(r, strayChars) + text[at:]
	}},
	{"empty-value", func(r *rand.Rand, text string) string {
		return replaceMatch(r, valueLine, text, 2, func(string) string {
			return pick(r, []string{"", `""`, "''", "~", "null"})
		})
	}},
	{"tab", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		switch r.IntN(3) {
		case 0:
			trimmed := strings.TrimLeft(ls[i], " ")
			if trimmed != ls[i] {
				ls[i] = "\t" + trimmed
			}
		case 1:
			ls[i] = strings.Replace(ls[i], ": ", ":\t", 1)
		default:
			ls[i] = strings.Replace(ls[i], "- ", "-\t", 1)
		}
		return strings.Join(ls, "")
	}},
	{"yaml11", func(r *rand.Rand, text string) string {
		return replaceMatch(r, valueLine, text, 2, func(string) string { return pick(r, yaml11Words) })
	}},
	{"doc-marker", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		ls[i] = pick(r, []string{"---\n", "...\n", "--- # next\n", "---\n---\n"}) + ls[i]
		return strings.Join(ls, "")
	}},
	{"flow", func(r *rand.Rand, text string) string {
		if r.IntN(2) == 0 { // wrap a value in [ ] or { }
			return replaceMatch(r, valueLine, text, 2, func(v string) string {
				return pick(r, []string{"[" + v + "]", "{" + v + "}", "{a: " + v + "}", "[" + v + ", x]"})
			})
		}
		// fold a block list under a key into a flow list
		ls := lines(text)
		for i, l := range ls {
			if !strings.HasSuffix(strings.TrimRight(l, "\r\n"), ":") || r.IntN(2) == 0 {
				continue
			}
			var items []string
			j := i + 1
			for ; j < len(ls) && strings.HasPrefix(strings.TrimLeft(ls[j], " "), "- "); j++ {
				items = append(items, strings.TrimSpace(strings.TrimPrefix(strings.TrimLeft(ls[j], " "), "- ")))
			}
			if len(items) == 0 {
				continue
			}
			ls[i] = strings.TrimRight(l, "\r\n") + " [" + strings.Join(items, ", ") + "]\n"
			return strings.Join(append(ls[:i+1], ls[j:]...), "")
		}
		return text
	}},
	{"comment", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		switch r.IntN(3) {
		case 0:
			ls[i] = strings.Repeat(" ", r.IntN(5)) + "# a comment\n" + ls[i]
		case 1:
			ls[i] = strings.Replace(ls[i], "\n", " # note\n", 1)
		default:
			ls[i] = strings.Replace(ls[i], "\n", "#x\n", 1)
		}
		return strings.Join(ls, "")
	}},
	{"delete-line", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		return strings.Join(append(ls[:i], ls[i+1:]...), "")
	}},
	{"swap-lines", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		if i+1 < len(ls) && strings.HasSuffix(ls[i+1], "\n") {
			ls[i], ls[i+1] = ls[i+1], ls[i]
		}
		return strings.Join(ls, "")
	}},
	{"extra-field", func(r *rand.Rand, text string) string {
		ls, i := pickLine(r, text)
		m := keyLine.FindStringSubmatch(ls[i])
		if m == nil || !strings.HasSuffix(ls[i], "\n") {
			return text
		}
		pad := strings.Repeat(" ", len(m[1]))
		k := pick(r, []string{"userid", "sso", "permissionset", "rolearn", "userarn", "username", "groups", "RoleArn", "notes", "uſerid"})
		v := pick(r, append([]string{"Admin", "arn:aws:iam::111122223333:role/extra", "[a, b]", "{a: b}", "x"}, yaml11Words...))
		ls[i] += pad + k + ": " + v + "\n"
		return strings.Join(ls, "")
	}},
	{"anchor", func(r *rand.Rand, text string) string {
		ms := valueLine.FindAllStringSubmatchIndex(text, -1)
		if len(ms) < 2 {
			return text
		}
		a, b := ms[r.IntN(len(ms))], ms[r.IntN(len(ms))]
		if a[4] >= b[4] {
			return text
		}
		alias := pick(r, []string{"*x", "*x", "{<<: *x}"})
		return text[:a[4]] + "&x " + text[a[4]:b[4]] + alias + text[b[5]:]
	}},
	{"merge", func(r *rand.Rand, text string) string {
		ls := lines(text)
		for i, l := range ls {
			if strings.HasPrefix(l, "- ") && i > 0 && r.IntN(2) == 0 {
				ls[0] = strings.Replace(ls[0], "- ", "- &base ", 1)
				if !strings.HasPrefix(ls[0], "- &base") {
					return text
				}
				ls[i] = "- <<: *base\n  " + strings.TrimPrefix(l, "- ")
				return strings.Join(ls, "")
			}
		}
		return text
	}},
	{"tag", func(r *rand.Rand, text string) string {
		return replaceMatch(r, valueLine, text, 2, func(v string) string {
			return pick(r, []string{"!!str ", "!!binary ", "!foo ", "!!int ", "!!null ", "!<tag:yaml.org,2002:str> "}) + v
		})
	}},
	{"line-ends", func(r *rand.Rand, text string) string {
		switch r.IntN(3) {
		case 0:
			return strings.ReplaceAll(text, "\n", "\r\n")
		case 1:
			return "\ufeff" + text
		}
		return strings.TrimSuffix(text, "\n")
	}},
	{"whole-key", func(r *rand.Rand, _ string) string {
		return pick(r, []string{"", "''", `""`, "``", "   \n", "[]", "~", "{}", "-", "- ", "---", "# only a comment\n", "null", "[ ]\n"})
	}},
}

// mutate applies k random mutations to random keys of a copy of data.
func mutate(r *rand.Rand, data map[string]string, k int) (map[string]string, string) {
	out := make(map[string]string, len(data))
	for key, v := range data {
		out[key] = v
	}
	keys := []string{KeyMapRoles, KeyMapRoles, KeyMapUsers, KeyMapAccounts}
	var names []string
	for range k {
		key := pick(r, keys)
		if _, ok := out[key]; !ok {
			key = KeyMapRoles
		}
		m := pick(r, mutations)
		if m.name == "whole-key" && r.IntN(3) != 0 {
			m = pick(r, mutations) // keep it rare
		}
		if out[key] == "" && m.name != "whole-key" {
			continue
		}
		out[key] = m.fn(r, out[key])
		names = append(names, m.name)
	}
	sort.Strings(names)
	return out, strings.Join(names, "+")
}
