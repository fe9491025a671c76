// Package textcap bounds text shown to people and written to logs: a
// hostile aws-auth can draw tens of thousands of findings, each quoting
// values of up to a MiB, and every place that shows them must stay small
// and say what it left out.
package textcap

import (
	"fmt"
	"unicode/utf8"
)

// Clip returns s when it fits in max bytes; otherwise a prefix of s, cut on
// a UTF-8 boundary, followed by a marker that says how many bytes were
// cut, the whole at most max bytes. A max too small for the marker gets
// the bare prefix.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	// The marker's length depends on the count, which depends on the cut:
	// size it for the largest count (all of s), then cut.
	keep := max - len(marker(len(s)))
	if keep < 0 {
		return prefix(s, max)
	}
	p := prefix(s, keep)
	return p + marker(len(s)-len(p))
}

// marker is what Clip appends: " …[N bytes cut]".
func marker(n int) string { return fmt.Sprintf(" …[%d bytes cut]", n) }

// prefix is the longest prefix of s of at most n bytes that does not split
// a UTF-8 sequence.
func prefix(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// List returns the first items that fit: at most max of them, each clipped
// to itemMax bytes, their lengths (plus sep between them) adding up to at
// most budget bytes; omitted is how many were left out. Only the items
// returned are rendered (item(i) is called for those and one more), so a
// list of any length costs what is shown.
func List(n int, item func(i int) string, max, itemMax, sep, budget int) (lines []string, omitted int) {
	used := 0
	for i := 0; i < n && len(lines) < max; i++ {
		line := Clip(item(i), itemMax)
		cost := len(line)
		if len(lines) > 0 {
			cost += sep
		}
		if used+cost > budget {
			break
		}
		used += cost
		lines = append(lines, line)
	}
	return lines, n - len(lines)
}
