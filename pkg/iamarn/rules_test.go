package iamarn

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The byte-by-byte rules must accept exactly what the regular expressions
// they replace accept.
func TestCharacterRulesMatchTheirRegexps(t *testing.T) {
	rules := []struct {
		name string
		re   *regexp.Regexp
		rule func(string) bool
	}{
		{"account", regexp.MustCompile(`^[0-9]{12}$`), ValidAccountID},
		{"name", regexp.MustCompile(`^[\w+=,.@-]{1,64}$`), ValidName},
		{"permission set", regexp.MustCompile(`^[\w+=,.@-]{1,32}$`), ValidPermissionSetName},
		{"path", regexp.MustCompile(`^/([\x21-\x7e]+/)*$`), validPath},
	}
	alphabet := []string{"/", "a", "Z", "0", "9", "_", "+", "=", ",", ".", "@", "-", " ", "!", "~", "\x7f", "\x20", "\t", "é", "ſ", "\u212a", "\x00", ":", "*"}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", "/", "//", "///", "/a/", "/a//", "//a/", "/ /", "123456789012", "12345678901", "1234567890123", "١٢٣٤٥٦٧٨٩٠١٢",
		strings.Repeat("a", 32), strings.Repeat("a", 33), strings.Repeat("a", 64), strings.Repeat("a", 65)}
	for range 200_000 {
		var b strings.Builder
		for range rng.IntN(70) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
		d := make([]byte, rng.IntN(14))
		for i := range d {
			d[i] = byte('0' + rng.IntN(11)) // digits and ':'
		}
		cases = append(cases, string(d))
	}
	for _, r := range rules {
		for _, s := range cases {
			if got, want := r.rule(s), r.re.MatchString(s); got != want {
				t.Errorf("%s rule on %q: %v, the regular expression says %v", r.name, s, got, want)
			}
		}
	}
}
