package awsauth

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonInputs are JSON texts (and near-misses) of every kind the
// authenticator's reading can give, and some it cannot.
var jsonInputs = []string{
	`"plain"`, `""`, `"with \"quote\""`, `"\u00e9t\u00e9"`, `"tab\there"`, "\"raw\x01control\"", "\"bad\xffutf8\"",
	`null`, `true`, `false`, `0`, `-1`, `1.5e3`, `[]`, `["a","b"]`, `["a",1]`, `[null]`, `{}`, `{"a":"b","a":"c"}`,
	`{"rolearn":"arn","groups":["x"]}`, ` "padded" `, `tru`, `-`, `[`, `{`, `"unterminated`, `nul`, `"a"x`, ``,
}

func TestJSONHelpersAgreeWithEncodingJSON(t *testing.T) {
	for _, in := range jsonInputs {
		var s string
		errS := json.Unmarshal([]byte(in), &s)
		got, ok := jsonString([]byte(in))
		if ok != (errS == nil) || ok && got != s {
			t.Errorf("jsonString(%q) = %q, %v; encoding/json: %q, %v", in, got, ok, s, errS)
		}
		var items []json.RawMessage
		errA := json.Unmarshal([]byte(in), &items)
		gotItems, err := jsonArray([]byte(in))
		if (err == nil) != (errA == nil) || err == nil && !reflect.DeepEqual(gotItems, items) {
			t.Errorf("jsonArray(%q) = %q, %v; encoding/json: %q, %v", in, gotItems, err, items, errA)
		}
		var obj map[string]json.RawMessage
		errO := json.Unmarshal([]byte(in), &obj)
		gotObj, err := jsonObject([]byte(in))
		if (err == nil) != (errO == nil) || err == nil && !reflect.DeepEqual(gotObj, obj) {
			t.Errorf("jsonObject(%q) = %q, %v; encoding/json: %q, %v", in, gotObj, err, obj, errO)
		}
	}
}

// foldKey's ASCII shortcut must give what the folding-orbit rule gives.
func TestFoldKeyASCIIShortcut(t *testing.T) {
	for c := 0; c < utf8.RuneSelf; c++ {
		for _, k := range []string{string(rune(c)), "RoleArn" + string(rune(c)), "GROUPS"} {
			if got, want := foldKey(k), foldOrbits(k); got != want {
				t.Errorf("foldKey(%q) = %q, want %q", k, got, want)
			}
		}
	}
	if got := foldKey("group\u017f"); got != "groups" {
		t.Errorf(`foldKey("groupſ") = %q, want "groups"`, got)
	}
}

// unknownTemplates' shortcut must give what the regular expression alone
// gives.
func TestUnknownTemplatesShortcut(t *testing.T) {
	byRegexp := func(u string) []string {
		var out []string
		for _, m := range templatePattern.FindAllStringSubmatch(u, -1) {
			if !usernameTemplates[m[1]] {
				out = append(out, m[1])
			}
		}
		return out
	}
	parts := []string{"{{", "}}", "{", "}", " ", "SessionName", "SessionNameRaw", "AccountID", "EC2PrivateDNSName", "AccessKeyID", "Other", "a", ":", "{{SessionName}}", "{{ SessionName }}"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		u := b.String()
		if got, want := unknownTemplates(u), byRegexp(u); !reflect.DeepEqual(got, want) {
			t.Fatalf("unknownTemplates(%q) = %q, the regular expression gives %q", u, got, want)
		}
	}
}
