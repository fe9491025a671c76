// Package charcheck judges characters the way they matter for aws-auth:
// which ones the authenticator's YAML parser reads as line breaks or
// refuses, and which ones make a name look like another one — invisible,
// control and bidirectional characters, spaces that are not U+0020,
// compatibility forms and look-alikes by the Unicode confusables data
// (UTS #39). The engine (pkg/awsauth) and the manifest reader
// (pkg/manifest) share it.
package charcheck

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.mau.fi/util/confusable"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
	"golang.org/x/text/unicode/runenames"
)

// Describe names a character for people: U+200B ZERO WIDTH SPACE.
func Describe(r rune) string {
	if r == utf8.RuneError {
		return "U+FFFD (a byte that is not UTF-8)"
	}
	if name := runenames.Name(r); name != "" && !strings.HasPrefix(name, "<") {
		return fmt.Sprintf("U+%04X %s", r, name)
	}
	if alias, ok := controlNames[r]; ok {
		return fmt.Sprintf("U+%04X %s", r, alias)
	}
	if unicode.IsControl(r) {
		return fmt.Sprintf("U+%04X (a control character)", r)
	}
	return fmt.Sprintf("U+%04X", r)
}

// controlNames are the Unicode name aliases of the control characters a
// message here is most likely to name (runenames has none for controls).
var controlNames = map[rune]string{
	0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN",
	0x1B: "ESCAPE", 0x7F: "DELETE", 0x85: "NEXT LINE (NEL)",
}

// IsHiddenLineBreak reports the line breaks of goyaml.v2 (is_break in its
// scanner, the same in v3) that editors, terminals and `kubectl get -o
// yaml` do not show as a new line: NEL, LS and PS. (CR is one too when it
// is not part of CRLF; the caller sees the next byte.)
func IsHiddenLineBreak(r rune) bool {
	return r == '\u0085' || r == '\u2028' || r == '\u2029'
}

// RefusedByYAML reports the characters goyaml.v2's reader refuses
// ("control characters are not allowed"): it accepts only TAB, LF, CR,
// #x20-#x7E, NEL, #xA0-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF.
func RefusedByYAML(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == '\u0085':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r < 0xa0:
		return true
	case r == 0xfffe || r == 0xffff:
		return true
	}
	return false
}

// Kinds of TextProblem.
const (
	TextInvalidUTF8 = "InvalidUTF8"        // a byte that is not UTF-8
	TextLineBreak   = "LineBreakCharacter" // NEL, LS, PS, or CR without LF
	TextRefused     = "ForbiddenCharacter" // refused by the YAML parser
	TextBidi        = "BidiControl"        // reorders how the line is shown
)

// TextProblem is a character of a YAML text that its readers see
// differently: the first one of each kind, with its 1-based line as
// editors count lines (by LF).
type TextProblem struct {
	Kind string
	Line int
	Rune rune // for TextInvalidUTF8, the byte
}

// ScanText finds, in YAML text, the characters that the authenticator's
// YAML parser reads differently from how editors, terminals and kubectl
// show them, or refuses: invalid UTF-8; a line break other than LF and
// CRLF (NEL, LS, PS, a lone CR: what reads as one line, a comment say, is
// two to the parser); a character the parser refuses; a bidirectional
// control, anywhere, even in a comment (it reorders what the reader sees of
// the line: the "Trojan Source" trick). One problem per kind, the first.
func ScanText(text string) []TextProblem {
	var out []TextProblem
	seen := map[string]bool{}
	line := 1
	add := func(kind string, r rune) {
		if !seen[kind] {
			seen[kind] = true
			out = append(out, TextProblem{Kind: kind, Line: line, Rune: r})
		}
	}
	for i, w := 0, 0; i < len(text); i += w {
		var r rune
		if c := text[i]; c < utf8.RuneSelf {
			// ASCII, most of any aws-auth: no bidi control or hidden
			// line break is, and decoding is not needed.
			r, w = rune(c), 1
		} else {
			r, w = utf8.DecodeRuneInString(text[i:])
		}
		switch {
		case r == utf8.RuneError && w == 1:
			add(TextInvalidUTF8, rune(text[i]))
		case r == '\n':
			line++
		case r == '\r':
			if i+1 >= len(text) || text[i+1] != '\n' {
				add(TextLineBreak, r)
			}
		case IsHiddenLineBreak(r):
			add(TextLineBreak, r)
		case RefusedByYAML(r):
			add(TextRefused, r)
		case unicode.Is(unicode.Bidi_Control, r):
			add(TextBidi, r)
		}
	}
	return out
}

// Invisible are the characters that render as nothing: the Unicode
// Default_Ignorable_Code_Point property is derived from these tables
// (DerivedCoreProperties.txt: Other_Default_Ignorable_Code_Point, Cf and the
// variation selectors), which Go's unicode package carries.
var Invisible = rangetable.Merge(unicode.Other_Default_Ignorable_Code_Point, unicode.Cf, unicode.Variation_Selector)

// Problem is what Value found wrong with a value.
type Problem struct {
	Reason string // InvisibleCharacter or ConfusableCharacter
	Msg    string // what the character is and does, to follow "<value> holds"
	Hint   string
}

// Value judges a string that is compared byte for byte (an ARN, a
// username, a group, a key): nil when it is plain, else the first problem.
func Value(v string) *Problem {
	if isPrintableASCII(v) {
		// Latin letters, digits and ASCII symbols only: in NFC, one
		// script, nothing invisible.
		return nil
	}
	for _, r := range v {
		if r < 0x80 && r >= 0x20 && r != 0x7f {
			continue
		}
		d := Describe(r)
		switch {
		case r == utf8.RuneError:
			continue // the text rules report invalid UTF-8
		case unicode.Is(unicode.Bidi_Control, r):
			return &Problem{"InvisibleCharacter", d + ", an invisible bidirectional control that reorders how the text is shown",
				"retype the value without it (it is invisible: delete the value and type it again)"}
		case unicode.IsControl(r):
			return &Problem{"InvisibleCharacter", d + ", a control character that is not shown",
				"retype the value without it"}
		case unicode.Is(Invisible, r):
			return &Problem{"InvisibleCharacter", d + ", which is invisible: the value looks like one without it, but is a different name to the authenticator and to Kubernetes",
				"retype the value without it (it is invisible: delete the value and type it again)"}
		case unicode.Is(unicode.White_Space, r):
			return &Problem{"InvisibleCharacter", d + ", a space that is not the plain space (U+0020)",
				"retype the value with plain spaces, or none"}
		}
		// A compatibility form (fullwidth, mathematical, ligature), or a
		// Latin or script-neutral character the Unicode confusables data
		// maps onto ASCII (ꜱ, ı, ː, ‐). Letters of other scripts are
		// judged as a whole below: a name all in Cyrillic is fine.
		c := norm.NFKC.String(string(r))
		if !isPlainASCII(c) {
			if s := scriptOf(r); s == "Latin" || s == "Common" || s == "Inherited" {
				c = confusable.GetReplacement(r)
			}
		}
		if isPlainASCII(c) {
			return &Problem{"ConfusableCharacter", fmt.Sprintf("%s, a look-alike of %q that is a different character to the authenticator and to Kubernetes", d, c),
				fmt.Sprintf("retype it in plain ASCII: %s", LookalikeASCII(v))}
		}
	}
	if !norm.NFC.IsNormalString(v) {
		return &Problem{"ConfusableCharacter", fmt.Sprintf("a decomposed character (%s): it looks like its composed form %q, but is a different name byte for byte", firstMark(v), norm.NFC.String(v)),
			"retype the value (most keyboards type the composed form)"}
	}
	if p := mixedScripts(v); p != nil {
		return p
	}
	return nil
}

// isPrintableASCII reports whether s holds only #x20-#x7E ("" included).
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

func firstMark(v string) string {
	for _, r := range norm.NFD.String(v) {
		if unicode.Is(unicode.Mn, r) {
			return Describe(r)
		}
	}
	return "a combining mark"
}

// lookalikeASCII is v with every character that looks like an ASCII one
// (NFKC, or the Unicode confusables data of UTS #39) replaced by it: what
// the reader most likely meant.
func LookalikeASCII(v string) string {
	var b strings.Builder
	for _, r := range v {
		b.WriteString(asciiLookalike(r))
	}
	return b.String()
}

// asciiLookalike returns the ASCII text r looks like, or r itself.
func asciiLookalike(r rune) string {
	if r < 0x80 {
		return string(r)
	}
	if c := norm.NFKC.String(string(r)); isPlainASCII(c) {
		return c
	}
	if c := confusable.GetReplacement(r); isPlainASCII(c) {
		return c
	}
	return string(r)
}

// mixedScripts finds the UTS #39 confusable cases among letters: letters
// of two scripts in one name (a Cyrillic "а" in "system:mаsters"), or a
// name whose letters, all of one other script, look like Latin ones.
func mixedScripts(v string) *Problem {
	var scripts []string
	firstOf := map[string]rune{}
	for _, r := range v {
		if r < 0x80 && !unicode.IsLetter(r) {
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsMark(r) {
			continue
		}
		s := scriptOf(r)
		if s == "Common" || s == "Inherited" || s == "" {
			continue
		}
		if _, ok := firstOf[s]; !ok {
			firstOf[s] = r
			scripts = append(scripts, s)
		}
	}
	switch {
	case len(scripts) > 1:
		other := scripts[1]
		if scripts[0] != "Latin" && firstOf["Latin"] != 0 {
			other = scripts[0]
		}
		r := firstOf[other]
		looks := ""
		if c := asciiLookalike(r); c != string(r) {
			looks = fmt.Sprintf(", which looks like the Latin %q", c)
		}
		hint := "write the whole name in one script"
		if l := LookalikeASCII(v); l != v && isPlainASCII(l) {
			hint = fmt.Sprintf("retype it in plain ASCII: %s", l)
		}
		return &Problem{"ConfusableCharacter", fmt.Sprintf("%s (%s) among %s letters%s: a name that mixes scripts looks like another name but is not it",
			Describe(r), other, strings.Join(otherThan(scripts, other), " and "), looks), hint}
	case len(scripts) == 1 && scripts[0] != "Latin":
		if l := LookalikeASCII(v); isPlainASCII(l) {
			r := firstOf[scripts[0]]
			return &Problem{"ConfusableCharacter", fmt.Sprintf("only %s letters (the first is %s) that look like Latin ones: it reads as %q, but is not that name", scripts[0], Describe(r), l),
				fmt.Sprintf("retype it in plain ASCII: %s", l)}
		}
	}
	return nil
}

func otherThan(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// scriptOf returns the Unicode script of r, by the tables of Go's unicode
// package.
func scriptOf(r rune) string {
	if r < 0x80 {
		if unicode.IsLetter(r) {
			return "Latin"
		}
		return "Common"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

// Fold folds a name for near-miss matching: look-alikes to ASCII,
// lowercased, with spaces, separators and invisible or control characters
// dropped.
func Fold(k string) string {
	var b strings.Builder
	for _, r := range LookalikeASCII(k) {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(Invisible, r):
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// Near returns the candidate that k is a near miss of — the same once
// folded (Fold), or within two edits of it — or "" when k is a candidate
// itself or like none of them. Candidates are compared lowercased.
func Near(k string, candidates []string) string {
	for _, c := range candidates {
		if k == c {
			return ""
		}
	}
	folded := Fold(k)
	best, bestD := "", 3
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if folded == lc {
			return c
		}
		if d := EditDistance(folded, lc); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b, in bytes.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
