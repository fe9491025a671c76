package awsauth

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// FuzzRender drives parse → rewrite → validate with arbitrary mapRoles and
// mapUsers text. Whatever the input: no panic; an admitted result reads
// back, as the authenticator reads it, with one mapping per entry; and
// rendering an admitted result again changes nothing.
func FuzzRender(f *testing.F) {
	files, _ := filepath.Glob("testdata/render/*.txt")
	for _, file := range files {
		gc := readGolden(f, file)
		f.Add(gc.in[KeyMapRoles], gc.in[KeyMapUsers])
	}
	f.Fuzz(func(t *testing.T, roles, users string) {
		data := map[string]string{KeyMapRoles: roles, KeyMapUsers: users}
		opts := Options{NodeRoleARNs: []string{"arn:aws:iam::111122223333:role/eks-node"}}
		res, err := Render(context.Background(), data, newFakeResolver(), opts)
		if err != nil {
			return // only AWS lookups fail, and the fake does not
		}
		if res.Findings.HasErrors() {
			return
		}
		for _, key := range []string{KeyMapRoles, KeyMapUsers} {
			text := res.Data[key]
			if isSkippable(text) {
				continue
			}
			js, err := sigsyaml.YAMLToJSON([]byte(text))
			if err != nil {
				t.Fatalf("admitted %s the authenticator cannot read: %v\n%s", key, err, text)
			}
			var entries []map[string]any
			if err := json.Unmarshal(js, &entries); err != nil {
				t.Fatalf("admitted %s that is not a list of mappings: %v\n%s", key, err, text)
			}
			want := len(res.Roles)
			if key == KeyMapUsers {
				want = len(res.Users)
			}
			if len(entries) != want {
				t.Fatalf("admitted %s with %d entries but the authenticator reads %d", key, want, len(entries))
			}
		}
		again, err := Render(context.Background(), res.Data, newFakeResolver(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Changed) != 0 || again.Findings.HasErrors() {
			t.Fatalf("not idempotent: changed %v, findings %v\nfirst output:\n%s", again.Changed, again.Findings.Strings(), res.Data[KeyMapRoles])
		}
	})
}
