package charcheck

import (
	"strings"
	"testing"
)

// The classes, each by a few of its members; the rules built on them are
// tested in pkg/awsauth and pkg/manifest, and held to the authenticator's
// parser by the differential there.
func TestValue(t *testing.T) {
	for v, want := range map[string]string{
		"admin":               "",
		"system:masters":      "",
		"разработчик":         "", // wholly Cyrillic, not all look-alikes
		"équipe":              "",
		"日本":                  "",
		"ad\u200bmin":         "InvisibleCharacter U+200B ZERO WIDTH SPACE",
		"de\u00adv":           "InvisibleCharacter U+00AD SOFT HYPHEN",
		"x\u2060":             "InvisibleCharacter U+2060 WORD JOINER",
		"a\ufeffb":            "InvisibleCharacter U+FEFF",
		"a\u202eb":            "InvisibleCharacter U+202E RIGHT-TO-LEFT OVERRIDE",
		"a\x00b":              "InvisibleCharacter U+0000 NULL",
		"a\tb":                "InvisibleCharacter U+0009",
		"a\u00a0b":            "InvisibleCharacter U+00A0 NO-BREAK SPACE",
		"system:m\u0430sters": "ConfusableCharacter U+0430 CYRILLIC SMALL LETTER A",
		"\uff4fps":            "ConfusableCharacter U+FF4F FULLWIDTH LATIN SMALL LETTER O",
		"master\ua731":        "ConfusableCharacter U+A731",
		"e\u0301quipe":        "ConfusableCharacter U+0301 COMBINING ACUTE ACCENT",
		"\u0430\u0440\u0435":  "ConfusableCharacter only Cyrillic letters",
	} {
		p := Value(v)
		switch {
		case want == "" && p != nil:
			t.Errorf("Value(%+q) = %+v, want plain", v, p)
		case want != "" && p == nil:
			t.Errorf("Value(%+q) = nil, want %s", v, want)
		case want != "":
			reason, part, _ := strings.Cut(want, " ")
			if p.Reason != reason || !strings.Contains(p.Msg, part) || p.Hint == "" {
				t.Errorf("Value(%+q) = %+v, want %s", v, p, want)
			}
		}
	}
}

func TestScanText(t *testing.T) {
	got := ScanText("a\n# b\u2028c\n\x00\n\u202e\r\n\xff\r")
	want := []TextProblem{{TextLineBreak, 2, '\u2028'}, {TextRefused, 3, 0}, {TextBidi, 4, '\u202e'}, {TextInvalidUTF8, 5, 0xff}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("problem %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := ScanText("a\r\nb\r\n"); len(got) != 0 {
		t.Errorf("CRLF: %+v", got)
	}
	if got := ScanText("a\rb"); len(got) != 1 || got[0].Kind != TextLineBreak {
		t.Errorf("a lone CR: %+v", got)
	}
}

func TestNear(t *testing.T) {
	keys := []string{"mapRoles", "mapUsers", "mapAccounts"}
	for k, want := range map[string]string{
		"mapRoles": "", "map_roles": "mapRoles", "mapRole": "mapRoles", "MAPUSERS": "mapUsers", "mapRoles ": "mapRoles",
		"m\u0430pRoles": "mapRoles", "mapRoles\u200b": "mapRoles", "notes": "", "roles": "",
	} {
		if got := Near(k, keys); got != want {
			t.Errorf("Near(%+q) = %q, want %q", k, got, want)
		}
	}
}
