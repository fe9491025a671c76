package splice

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkApply: the cost of applying edits to a text near the 1 MiB
// ConfigMap limit, one replacement per entry (every entry resolved at
// once, the most a render does). Applying is one pass over the text,
// whatever the number of edits.
func BenchmarkApply(b *testing.B) {
	for _, entries := range []int{100, 6000} {
		var src strings.Builder
		var at []int
		for i := 0; src.Len() < 1<<20-200; i++ {
			fmt.Fprintf(&src, "- permissionset: Team%04d\n  username: team%04d:{{SessionName}}\n  groups:\n    - team%04d-admins\n", i, i, i)
			if i < entries {
				at = append(at, strings.LastIndex(src.String(), "- permissionset")+2)
			}
		}
		text := src.String()
		b.Run(fmt.Sprintf("1MiB/edits=%d", len(at)), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				t := New(text)
				for _, a := range at {
					t.Insert(a, "rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_Team_0123456789abcdef\n  ")
				}
				if _, err := t.Apply(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
