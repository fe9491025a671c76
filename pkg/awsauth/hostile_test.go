package awsauth

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hostile and odd input: each answer comes within a hard deadline (which
// only catches hangs) and a generous allocation bound, and is either a
// clear error naming the key, the entry and the fix, or an admission of
// something the authenticator loads exactly as written.

const (
	hostileDeadline = 20 * time.Second // generous: -race is slow; this only catches hangs
	hostileMaxAlloc = 64 << 20
)

// bounded runs fn under the deadline and returns the bytes it allocated.
func bounded(t *testing.T, fn func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(hostileDeadline):
		t.Fatalf("no answer within %v", hostileDeadline)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > hostileMaxAlloc {
		t.Errorf("allocated %d MiB, want < %d MiB", alloc>>20, hostileMaxAlloc>>20)
	}
	return alloc
}

type hostileCase struct {
	name string
	data map[string]string
	opts Options
	// reject is the rule that must reject it, with the key and entry index
	// it names (index -1: none) and words the finding must carry; when
	// reject is empty the document is admitted and the authenticator must
	// load the rendered result in full.
	reject  string
	key     string
	index   int
	mention []string
	// check looks further at an admitted render.
	check func(t *testing.T, res *Result)
}

func rolesOnly(text string) map[string]string { return map[string]string{KeyMapRoles: text} }

const okEntry = "- rolearn: arn:aws:iam::111122223333:role/ok\n  username: ok\n"

// billionLaughs is the classic alias bomb inside a mapRoles entry: nine
// levels of nine aliases, 9^9 strings once expanded.
func billionLaughs(key string) string {
	var b strings.Builder
	if key == KeyMapAccounts {
		b.WriteString("- &a \"111122223333\"\n")
	} else {
		b.WriteString(okEntry + "  x0: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	}
	prev := "a"
	for i := 1; i <= 9; i++ {
		name := string(rune('a' + i))
		refs := strings.TrimSuffix(strings.Repeat("*"+prev+", ", 9), ", ")
		if key == KeyMapAccounts {
			fmt.Fprintf(&b, "- &%s [%s]\n", name, refs)
		} else {
			fmt.Fprintf(&b, "  x%d: &%s [%s]\n", i, name, refs)
		}
		prev = name
	}
	return b.String()
}

func hostileCases() []hostileCase {
	node := "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n"
	ps := "- permissionset: Admin\n  username: admin\n  groups:\n    - system:masters\n"
	dense := func(size int) string { // a list of minimal entries, size bytes
		body := strings.Repeat("- {}\n", size/5)
		return body + strings.Repeat("#", size-len(body))
	}
	// A 1 MiB ConfigMap, counted the way the apiserver does: keys + values
	// (with the node role mapped, so that render adds nothing).
	atLimit := func(extra int) map[string]string {
		d := map[string]string{KeyMapRoles: node}
		d["notes"] = strings.Repeat("n", MaxConfigMapBytes-len(KeyMapRoles)-len(node)-len("notes")+extra)
		return d
	}
	return []hostileCase{
		// Aliases: goyaml.v2, which the authenticator reads with, refuses
		// excessive aliasing; we say so before anything is loaded.
		{name: "billion laughs in mapRoles", data: rolesOnly(billionLaughs(KeyMapRoles)),
			reject: "ReadDifferently", key: KeyMapRoles, index: -1, mention: []string{"excessive aliasing", "drop every mapping"}},
		{name: "billion laughs in mapAccounts", data: map[string]string{KeyMapAccounts: billionLaughs(KeyMapAccounts)},
			reject: "ReadDifferently", key: KeyMapAccounts, index: -1, mention: []string{"mapAccounts"}},
		{name: "alias bomb that is not a list", data: rolesOnly(strings.ReplaceAll(strings.TrimPrefix(billionLaughs(KeyMapRoles), okEntry), "  x", "x")),
			reject: "NotAList", key: KeyMapRoles, index: -1, mention: []string{"'- '"}},

		// Deep nesting: goyaml stops at 10000 levels.
		{name: "10k unclosed [", data: rolesOnly(strings.Repeat("[", 10000)),
			reject: "MalformedYAML", key: KeyMapRoles, index: -1, mention: []string{"not valid YAML"}},
		{name: "10k unclosed {", data: rolesOnly(strings.Repeat("{", 10000)),
			reject: "MalformedYAML", key: KeyMapRoles, index: -1, mention: []string{"not valid YAML"}},
		{name: "100k nested lists in a value", data: rolesOnly(okEntry + "  x: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"),
			reject: "MalformedYAML", key: KeyMapRoles, index: -1, mention: []string{"max depth"}},
		{name: "9999 nested lists as an entry", data: rolesOnly(strings.Repeat("[", 9999) + strings.Repeat("]", 9999)),
			reject: "NestedTooDeep", key: KeyMapRoles, index: 0, mention: []string{"entry 0", "9998 levels deep", "key: value"}},
		{name: "nested '- ' 5000 deep", data: rolesOnly(strings.Repeat("- ", 5000) + "x\n"),
			reject: "NestedTooDeep", key: KeyMapRoles, index: 0, mention: []string{"5000 levels deep"}},
		{name: "an unknown field nested 40 deep", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n- rolearn: arn:aws:iam::111122223333:role/b\n  x: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n"),
			reject: "NestedTooDeep", key: KeyMapRoles, index: 1, mention: []string{"entry 1 nests values 41 levels deep", "line 4 of mapRoles"}},

		// Size: the apiserver refuses more than 1 MiB; nothing is parsed.
		{name: "just over 1 MiB", data: rolesOnly(dense(MaxConfigMapBytes - len(KeyMapRoles) + 1)),
			reject: "TooLarge", index: -1, mention: []string{"1048577 bytes", "at most 1048576"}},
		{name: "binaryData pushes it over", data: rolesOnly(okEntry), opts: Options{ExtraBytes: MaxConfigMapBytes},
			reject: "TooLarge", index: -1, mention: []string{"at most 1048576"}},
		{name: "exactly 1 MiB", data: atLimit(0)},
		{name: "1 MiB and a byte", data: atLimit(1), reject: "TooLarge", index: -1},

		// Encodings and line ends.
		{name: "invalid UTF-8", data: rolesOnly(okEntry + "- rolearn: arn:aws:iam::111122223333:role/b\n  username: \xff\xfe\n"),
			reject: "InvalidUTF8", key: KeyMapRoles, index: -1, mention: []string{"line 4 of mapRoles", "UTF-8", "0xFF"}},
		{name: "a BOM", data: rolesOnly("\ufeff" + ps + node), check: func(t *testing.T, res *Result) {
			if !strings.HasPrefix(res.Data[KeyMapRoles], "\ufeff- rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_") {
				t.Errorf("BOM or edit lost: %q", res.Data[KeyMapRoles])
			}
		}},
		{name: "CRLF line ends", data: rolesOnly(strings.ReplaceAll(ps, "\n", "\r\n")), check: func(t *testing.T, res *Result) {
			if strings.Count(res.Data[KeyMapRoles], "\n") != strings.Count(res.Data[KeyMapRoles], "\r\n") {
				t.Errorf("line ends mixed: %q", res.Data[KeyMapRoles])
			}
		}},
		// A lone CR is a line break to the parser but not on screen.
		{name: "CR-only line ends", data: rolesOnly(strings.ReplaceAll(ps, "\n", "\r")),
			reject: "LineBreakCharacter", key: KeyMapRoles, index: -1, mention: []string{"U+000D", "carriage return", "line 1 of mapRoles"}},
		{name: "tabs for indentation", data: rolesOnly(strings.ReplaceAll(node, "  ", "\t")),
			reject: "MalformedYAML", key: KeyMapRoles, index: -1, mention: []string{"line 2", "tab"}},

		// Documents and keys.
		{name: "several YAML documents", data: rolesOnly(okEntry + "---\n" + node),
			reject: "MultipleDocuments", key: KeyMapRoles, index: -1, mention: []string{"---", "ignores everything after"}},
		{name: "a leading --- is one document", data: rolesOnly("---\n" + okEntry)},
		{name: "duplicate key in one mapping", data: rolesOnly(okEntry + "- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n  username: c\n"),
			reject: "DuplicateField", key: KeyMapRoles, index: 1, mention: []string{`"username" appears twice`, "lines 4 and 5 of mapRoles", "last one", "put '- ' in front of it", "keep only one"}},
		{name: "duplicate rolearn next to a permission set", data: rolesOnly(
			"- permissionset: Admin\n  rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0000000000000000\n  rolearn: arn:aws:iam::111122223333:role/someone-else\n  username: a\n"),
			reject: "DuplicateField", key: KeyMapRoles, index: 0, mention: []string{"permissionset Admin", `"rolearn" appears twice`}},
		{name: "two spellings of one key", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  RoleArn: ~\n  username: a\n"),
			reject: "DuplicateField", key: KeyMapRoles, index: 0, mention: []string{`"RoleArn" and "rolearn"`}},
		{name: "a key that encoding-json folds onto groups", data: rolesOnly(okEntry + "  groupſ: system:masters\n"),
			reject: "InvalidGroups", key: KeyMapRoles, index: 0, mention: []string{"not as a list"}},
		{name: "a key that encoding-json folds onto username", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  uſername: alice\n"),
			check: func(t *testing.T, res *Result) {
				if res.Roles[0].Username != "alice" {
					t.Errorf("username read as %q", res.Roles[0].Username)
				}
			}},
		{name: "userid that is not a string", data: rolesOnly(okEntry + "  userid: 12345\n"),
			reject: "WrongType", key: KeyMapRoles, index: 0, mention: []string{"userid", "quotes"}},

		// Tags.
		{name: "!!binary hides an ARN", data: rolesOnly("- rolearn: !!binary YXJuOmF3czppYW06OjExMTEyMjIyMzMzMzpyb2xlL2E=\n  username: a\n"),
			reject: "YAMLTag", key: KeyMapRoles, index: 0, mention: []string{"!!binary", "line 1", "plain text"}},
		{name: "!!binary hides a group", data: rolesOnly(okEntry + "  groups: [!!binary c3lzdGVtOm1hc3RlcnM=]\n"),
			reject: "YAMLTag", key: KeyMapRoles, index: 0},
		{name: "!!str makes on a string", data: rolesOnly("- rolearn: !!str arn:aws:iam::111122223333:role/a\n  username: !!str on\n"),
			check: func(t *testing.T, res *Result) {
				if res.Roles[0].Username != "on" {
					t.Errorf("username read as %q", res.Roles[0].Username)
				}
			}},
		{name: "a custom tag is ignored", data: rolesOnly("- !entry\n  rolearn: !arn arn:aws:iam::111122223333:role/a\n  username: !foo a\n")},
		{name: "!!int on a username", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: !!int \"5\"\n"),
			reject: "WrongType", key: KeyMapRoles, index: 0, mention: []string{"number 5", "quotes"}},
		{name: "a lone tag", data: map[string]string{KeyMapAccounts: "!\n"},
			reject: "ReadDifferently", key: KeyMapAccounts, index: -1},

		// Anchors, aliases and merge keys.
		{name: "an aliased groups list", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups: &admins [system:masters, ops]\n" +
			"- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n  groups: *admins\n"),
			check: func(t *testing.T, res *Result) {
				if strings.Join(res.Roles[1].Groups, ",") != "system:masters,ops" {
					t.Errorf("aliased groups read as %v", res.Roles[1].Groups)
				}
			}},
		{name: "an aliased entry", data: rolesOnly("- &a\n  rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n- *a\n"),
			reject: "DuplicateARN", key: KeyMapRoles, index: 1},
		{name: "a merge key", data: rolesOnly("- &base\n  rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups: [g]\n" +
			"- <<: *base\n  rolearn: arn:aws:iam::111122223333:role/b\n"),
			reject: "MergeKey", key: KeyMapRoles, index: 1, mention: []string{"line 5", "<<", "write the fields out"}},
		{name: "a permission set through a merge key", data: rolesOnly("- &base\n  permissionset: Admin\n  username: a\n- <<: *base\n  username: b\n"),
			reject: "MergeKey", key: KeyMapRoles, index: 1},
		{name: "an aliased rolearn next to a permission set", data: rolesOnly(okEntry + "  note: &r arn:aws:iam::111122223333:role/b\n" +
			"- rolearn: *r\n  permissionset: Admin\n  username: b\n"),
			reject: "YAMLAlias", key: KeyMapRoles, index: 1, mention: []string{"*r", "written out"}},
		{name: "an aliased pathed rolearn", data: rolesOnly(okEntry + "  note: &r arn:aws:iam::111122223333:role/team/b\n- rolearn: *r\n  username: b\n"),
			reject: "YAMLAlias", key: KeyMapRoles, index: 1},

		// Nulls and numbers.
		{name: "null entries", data: rolesOnly(okEntry + "- ~\n- null\n-\n"),
			reject: "EmptyEntry", key: KeyMapRoles, index: 1, mention: []string{"entry 1 is empty", "remove the empty"}},
		{name: "a number as username", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: 12345\n"),
			reject: "WrongType", key: KeyMapRoles, index: 0, mention: []string{"number 12345", "quotes"}},
		{name: "a number as rolearn", data: rolesOnly("- rolearn: 111122223333\n  username: a\n"),
			reject: "WrongType", key: KeyMapRoles, index: 0},
		{name: "a hex number as group", data: rolesOnly(okEntry + "  groups: [0x1F]\n"),
			reject: "InvalidGroups", key: KeyMapRoles, index: 0, mention: []string{"number 31", "quotes"}},
		{name: "yes as username", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: yes\n"),
			reject: "WrongType", key: KeyMapRoles, index: 0, mention: []string{"boolean true"}},
		{name: "unquoted account IDs", data: map[string]string{KeyMapAccounts: "- 111122223333\n- 012345678901\n"}},
		{name: "a hex account ID", data: map[string]string{KeyMapAccounts: "- 0x1F\n"},
			reject: "InvalidAccountID", key: KeyMapAccounts, index: 0},

		// Empty keys the authenticator skips.
		{name: "'' is empty", data: map[string]string{KeyMapRoles: "''", KeyMapUsers: "''"}, check: func(t *testing.T, res *Result) {
			if !strings.HasPrefix(res.Data[KeyMapRoles], "- rolearn: "+diffNodeRole) || res.Data[KeyMapUsers] != "''" {
				t.Errorf("got %q", res.Data)
			}
		}},
		{name: "only comments", data: map[string]string{KeyMapRoles: "# nothing yet\n", KeyMapUsers: "# nobody\n"},
			check: func(t *testing.T, res *Result) {
				if !strings.HasPrefix(res.Data[KeyMapRoles], "# nothing yet\n- rolearn: "+diffNodeRole) {
					t.Errorf("got %q", res.Data[KeyMapRoles])
				}
			}},

		// Flow style the splice must respect.
		{name: "a comma in a resolved ARN inside a flow mapping", data: rolesOnly("- { permissionset:  'a=b,c@d-e_f', username: odd }\n"),
			check: func(t *testing.T, res *Result) {
				want := "- { rolearn: \"arn:aws:iam::111122223333:role/AWSReservedSSO_a=b,c@d-e_f_3333333333333333\", permissionset:  'a=b,c@d-e_f', username: odd }\n"
				if !strings.HasPrefix(res.Data[KeyMapRoles], want) {
					t.Errorf("got %q\nwant %q...", res.Data[KeyMapRoles], want)
				}
			}},
		{name: "an empty value in a re-encoded flow list", data: rolesOnly("[{note: , rolearn: arn:aws:iam::111122223333:role/team/a, username: a}]\n"),
			check: func(t *testing.T, res *Result) {
				if !strings.Contains(res.Data[KeyMapRoles], "note: null") {
					t.Errorf("got %q", res.Data[KeyMapRoles])
				}
			}},

		// One huge line.
		{name: "a 900 KiB username", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/a\n  username: " + strings.Repeat("u", 900<<10) + "\n")},
		{name: "a 900 KiB comment", data: rolesOnly(okEntry + "# " + strings.Repeat("c", 900<<10) + "\n")},
		{name: "a 900 KiB ARN", data: rolesOnly("- rolearn: arn:aws:iam::111122223333:role/" + strings.Repeat("r", 900<<10) + "\n  username: a\n"),
			reject: "InvalidARN", key: KeyMapRoles, index: 0, mention: []string{"valid IAM role name"}},
		{name: "a 900 KiB key", data: rolesOnly(okEntry + "  " + strings.Repeat("k", 900<<10) + ": x\n"),
			reject: "MalformedYAML", key: KeyMapRoles, index: -1, mention: []string{"line 3"}},
	}
}

func TestHostileInput(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.NodeRoleARNs = []string{diffNodeRole}
			var lint, res *Result
			var err error
			lintAlloc := bounded(t, func() { lint = LintWithOptions(tc.data, tc.opts) })
			renderAlloc := bounded(t, func() { res, err = Render(context.Background(), tc.data, newFakeResolver(), opts) })
			t.Logf("lint allocated %d KiB, render %d KiB", lintAlloc>>10, renderAlloc>>10)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if tc.reject == "" {
				if lint.Findings.HasErrors() || res.Findings.HasErrors() {
					t.Fatalf("rejected:\n  %s\n  %s", strings.Join(lint.Findings.Errors().Strings(), "\n  "), strings.Join(res.Findings.Errors().Strings(), "\n  "))
				}
				if tc.opts.ExtraBytes == 0 {
					if d := damage(lint, res, newFakeResolver()); d != "" {
						t.Fatalf("admitted, but the authenticator disagrees: %s", d)
					}
				}
				if tc.check != nil {
					tc.check(t, res)
				}
				return
			}
			for name, r := range map[string]*Result{"lint": lint, "render": res} {
				f, ok := findingFor(r.Findings, tc)
				if !ok {
					t.Errorf("%s: no %s error for %s[%d]; got:\n  %s", name, tc.reject, tc.key, tc.index, strings.Join(r.Findings.Strings(), "\n  "))
					continue
				}
				if f.Hint == "" {
					t.Errorf("%s: the finding does not say how to fix it: %s", name, f)
				}
				for _, m := range tc.mention {
					if !strings.Contains(f.String(), m) {
						t.Errorf("%s: the finding does not mention %q: %s", name, m, f)
					}
				}
			}
		})
	}
}

func findingFor(fs Findings, tc hostileCase) (Finding, bool) {
	for _, f := range fs.Errors() {
		if f.Reason != tc.reject || f.Key != tc.key {
			continue
		}
		if tc.index < 0 && f.Index == nil || tc.index >= 0 && f.Index != nil && *f.Index == tc.index {
			return f, true
		}
	}
	return Finding{}, false
}

// TestMergedPermissionSetDoesNotPanic: Render used to dereference a nil key
// node for a permission set merged in with '<<'; now it is a MergeKey error.
func TestMergedPermissionSetDoesNotPanic(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	res, err := Render(context.Background(), rolesOnly("- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n  note: &b {permissionset: Admin}\n- <<: *b\n  username: other\n"),
		newFakeResolver(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertFindings(t, res.Findings.Errors(), []want{"error MergeKey mapRoles[1]"})
}

// TestTwoSpellingsReadAsTheAuthenticatorDoes: with `rolearn` and `RoleArn`
// in one entry, encoding/json applies the keys in the JSON's (sorted)
// order and a null leaves a string field alone; the engine reads the entry
// the same way every time, and rejects it for the two spellings only.
func TestTwoSpellingsReadAsTheAuthenticatorDoes(t *testing.T) {
	data := rolesOnly("- RoleArn: arn:aws:iam::111122223333:role/a\n  rolearn: ~\n  username: a\n")
	for range 50 {
		res := Lint(data)
		assertFindings(t, res.Findings, []want{"error DuplicateField mapRoles[0]"})
		if len(res.Roles) != 1 || res.Roles[0].ARN != "arn:aws:iam::111122223333:role/a" {
			t.Fatalf("read as %+v", res.Roles)
		}
		if t.Failed() {
			return
		}
	}
}
