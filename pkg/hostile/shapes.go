// Package hostile generates aws-auth documents of hostile shapes, each close
// to the 1 MiB ConfigMap limit: the inputs that must still be answered
// quickly, in bounded memory and with bounded output (issue 11, point 4).
// The engine's tests and benchmarks, the admission handlers' and `make
// bench` all measure the same shapes.
package hostile

import (
	"fmt"
	"strings"
)

// Budget is the data size each shape fills: the ConfigMap limit (1 MiB,
// keys and values) less room for the key name and a node-role entry the
// mutating webhook may add.
const Budget = 1<<20 - 1024

// Shape is one hostile document.
type Shape struct {
	// Name is stable: benchmarks and reports are keyed by it.
	Name string
	// Data is the ConfigMap's data.
	Data map[string]string
}

// Shapes returns every shape, in a fixed order.
func Shapes() []Shape {
	return []Shape{
		{"empty-entries-100KB", roles(strings.Repeat("-\n", 50000))},
		{"empty-entries-1MiB", roles(fill("-\n"))},
		{"empty-mappings", roles(fill("- {}\n"))},
		{"tiny-entries", roles(fillf(func(i int) string { return fmt.Sprintf("- rolearn: arn:aws:iam::111122223333:role/r%d\n", i) }))},
		{"one-huge-entry", roles(hugeEntry())},
		{"deep-nesting", roles(deepNesting())},
		{"deep-unclosed", roles(fill("["))},
		{"one-long-line", roles("- rolearn: arn:aws:iam::111122223333:role/a\n  username: " + strings.Repeat("u", Budget-100) + "\n")},
		{"long-values-in-findings", roles(fillf(func(i int) string {
			return fmt.Sprintf("- rolearn: arn:aws:iam::111122223333:role/%s%d\n  username: u\n", strings.Repeat("r", 8<<10), i)
		}))},
		{"duplicate-arns", roles(fill("- rolearn: arn:aws:iam::111122223333:role/same\n  username: u\n"))},
		{"every-finding-kind", roles(fillf(everyKind))},
		{"bad-accounts", map[string]string{"mapAccounts": fillf(func(i int) string { return fmt.Sprintf("- \"%d\"\n", i) })}},
	}
}

func roles(text string) map[string]string { return map[string]string{"mapRoles": text} }

// fill repeats unit up to Budget bytes.
func fill(unit string) string { return strings.Repeat(unit, Budget/len(unit)) }

// fillf appends unit(0), unit(1), ... while the result stays within Budget.
func fillf(unit func(i int) string) string {
	var b strings.Builder
	for i := 0; ; i++ {
		u := unit(i)
		if b.Len()+len(u) > Budget {
			return b.String()
		}
		b.WriteString(u)
	}
}

// hugeEntry is one valid entry whose groups list fills the budget.
func hugeEntry() string {
	head := "- rolearn: arn:aws:iam::111122223333:role/huge\n  username: huge\n  groups:\n"
	var b strings.Builder
	b.WriteString(head)
	for i := 0; ; i++ {
		g := fmt.Sprintf("    - g%d\n", i)
		if b.Len()+len(g) > Budget {
			return b.String()
		}
		b.WriteString(g)
	}
}

// deepNesting is entries whose value nests lists as deep as the YAML
// parsers allow (goyaml stops at 10,000 levels), repeated to the budget.
func deepNesting() string {
	const depth = 9000
	return fillf(func(int) string {
		return "- rolearn: arn:aws:iam::111122223333:role/a\n  x: " + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "\n"
	})
}

// everyKind cycles through entries that each draw a different finding,
// errors and warnings alike.
func everyKind(i int) string {
	arn := fmt.Sprintf("arn:aws:iam::111122223333:role/k%d", i)
	kinds := []string{
		"- rolearn: " + arn + "\n  username: yes\n",                                              // WrongType
		"- rolearn: arn:aws:iam::1:role/x" + fmt.Sprint(i) + "\n  username: u\n",                 // InvalidARN
		"- username: u\n  groups: [g]\n",                                                         // MissingARN
		"- rolearn: " + arn + "\n  username: u\n  colour: blue\n",                                // UnknownKey (warning)
		"- rolearn: " + arn + "\n  usrname: u\n",                                                 // MisspeltKey
		"- rolearn: " + arn + "\n  username: u\n  groups: admins\n",                              // InvalidGroups
		"- rolearn: arn:aws:iam::111122223333:role/team/p" + fmt.Sprint(i) + "\n  username: u\n", // PathInARN (warning)
		"- rolearn: " + arn + "\n  username: u:{{Nope}}\n",                                       // UnknownTemplate (warning)
		"- rolearn: " + arn + "\n",                                                               // MissingUsername (warning)
		"- rolearn: " + arn + "\n  RoleArn: " + arn + "x\n  username: u\n",                       // DuplicateField
		"- sso: {permissionSetName: A}\n  username: u\n",                                         // UnsupportedSSOMatcher
		"-\n", // EmptyEntry
	}
	return kinds[i%len(kinds)]
}
