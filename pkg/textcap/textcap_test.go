package textcap

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	if got := Clip("short", 5); got != "short" {
		t.Errorf("a fitting text was changed: %q", got)
	}
	// 3-byte runes: a cut must not split one.
	s := strings.Repeat("€", 1000)
	for _, max := range []int{1, 5, 20, 21, 22, 23, 100, 2999} {
		got := Clip(s, max)
		if len(got) > max || !utf8.ValidString(got) {
			t.Fatalf("Clip(_, %d) = %d bytes, valid UTF-8 %v", max, len(got), utf8.ValidString(got))
		}
		if max < 20 {
			continue // too small for the marker: a bare prefix
		}
		kept := got[:strings.LastIndex(got, " …[")]
		want := fmt.Sprintf(" …[%d bytes cut]", len(s)-len(kept))
		if !strings.HasSuffix(got, want) || !strings.HasPrefix(s, kept) {
			t.Errorf("Clip(_, %d) = %q, want the kept prefix and %q", max, got, want)
		}
	}
}

func TestList(t *testing.T) {
	items := make([]string, 50000)
	for i := range items {
		items[i] = fmt.Sprintf("item %d", i)
	}
	rendered := 0
	item := func(i int) string { rendered++; return items[i] }

	lines, omitted := List(len(items), item, 100, 1024, 1, 1<<20)
	if len(lines) != 100 || omitted != 49900 || lines[0] != "item 0" || lines[99] != "item 99" {
		t.Errorf("by count: %d lines (%q ... %q), %d omitted", len(lines), lines[0], lines[len(lines)-1], omitted)
	}
	if rendered > 101 {
		t.Errorf("rendered %d items to show 100", rendered)
	}

	// By bytes: "item N" is 6 bytes for N < 10, each separated by 1.
	lines, omitted = List(len(items), func(i int) string { return items[i] }, 100, 1024, 1, 6*5+4)
	if len(lines) != 5 || omitted != len(items)-5 {
		t.Errorf("by budget: %q, %d omitted", lines, omitted)
	}

	// Each item is clipped.
	long := strings.Repeat("x", 5000)
	lines, omitted = List(3, func(int) string { return long }, 100, 1024, 0, 1<<20)
	if len(lines) != 3 || omitted != 0 || len(lines[0]) > 1024 || !strings.HasSuffix(lines[0], "bytes cut]") {
		t.Errorf("clipped items: %d lines of %d bytes, %d omitted", len(lines), len(lines[0]), omitted)
	}
}
