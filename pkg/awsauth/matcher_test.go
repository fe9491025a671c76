package awsauth

import (
	"reflect"
	"strings"
	"testing"
)

// matchLinear is Match as the authenticator's MapStore reads it, one scan
// per caller (the code Matcher replaced): the reference Matcher must agree
// with.
func matchLinear(l *Loaded, canonicalARN string) ([]LoadedMapping, string) {
	subject := strings.ToLower(canonicalARN)
	for _, set := range []struct {
		key      string
		mappings []LoadedMapping
		keyOf    func(LoadedMapping) string
	}{
		{KeyMapRoles, l.Roles, func(m LoadedMapping) string { return strings.ToLower(m.ARN) }},
		{KeyMapUsers, l.Users, func(m LoadedMapping) string { return m.ARN }},
	} {
		kept := map[string]LoadedMapping{}
		var order []string
		for _, m := range set.mappings {
			if m.SSO {
				continue
			}
			k := set.keyOf(m)
			if _, seen := kept[k]; !seen {
				order = append(order, k)
			}
			kept[k] = m
		}
		var out []LoadedMapping
		for _, k := range order {
			if m := kept[k]; strings.EqualFold(m.ARN, subject) {
				out = append(out, m)
			}
		}
		if len(out) > 0 {
			return out, set.key
		}
	}
	return nil, ""
}

func TestMatcherAgreesWithAScan(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/"
	user := "arn:aws:iam::111122223333:user/"
	l := &Loaded{
		Roles: []LoadedMapping{
			{Index: 0, ARN: role + "Ops", Username: "a"},
			{Index: 1, ARN: role + "ops", Username: "b"},         // same lowercased: the last wins
			{Index: 2, ARN: role + "\u212Aelvin", Username: "k"}, // Kelvin sign: EqualFold matches k, ToLower does too
			{Index: 3, ARN: role + "kelvin", Username: "k2"},
			{Index: 4, ARN: role + "cla\u017Fs", Username: "s"}, // long s: EqualFold matches s, ToLower does not
			{Index: 5, ARN: role + "sso", SSO: true},
			{Index: 6, ARN: role + "both", Username: "r"},
		},
		Users: []LoadedMapping{
			{Index: 0, ARN: user + "Alice", Username: "a1"},
			{Index: 1, ARN: user + "alice", Username: "a2"}, // two spellings both stay
			{Index: 2, ARN: role + "both", Username: "u"},
		},
	}
	x := l.Matcher()
	for _, arn := range []string{role + "ops", role + "OPS", role + "kelvin", role + "KELVIN", role + "class", role + "sso",
		role + "both", user + "alice", user + "ALICE", user + "bob", "", "arn:aws:iam::111122223333:role/\xff"} {
		want, wantKey := matchLinear(l, arn)
		got, key := x.Match(arn)
		if !reflect.DeepEqual(got, want) || key != wantKey {
			t.Errorf("Match(%q) = %v %q, the scan says %v %q", arn, got, key, want, wantKey)
		}
	}
}
