package awsauth

import (
	"fmt"
	"strings"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/textcap"
)

// Bounds on findings where they are shown. A hostile aws-auth draws a
// finding per entry (half a million empty entries fit in 1 MiB), and a
// finding may quote a value of up to a MiB; what people are shown, and what
// is logged, lists the first findings and says how many more there are.
const (
	// MaxListedFindings is how many findings a message lists.
	MaxListedFindings = 100
	// MaxFindingBytes is the longest line one finding is shown as.
	MaxFindingBytes = 1 << 10
)

// Severity says whether a finding rejects the object or is only shown.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one thing the engine has to say about an aws-auth document.
// The JSON form is what `lint -o json` prints.
type Finding struct {
	Severity Severity `json:"severity"`
	// Key is the data key (mapRoles, mapUsers, mapAccounts); empty for
	// findings about the ConfigMap as a whole.
	Key string `json:"key"`
	// Index is the 0-based entry in Key, or nil when no entry applies.
	Index *int `json:"index"`
	// Field is the entry field (rolearn, groups, ...), when one applies.
	Field string `json:"field"`
	// Entry names the entry the way a person finds it: "permissionset
	// Admin" or "rolearn arn:aws:iam::111122223333:role/ops".
	Entry string `json:"entry,omitempty"`
	// Line is the 1-based line inside the data key's text (the line of
	// mapRoles, say), as the webhook sees it: a data value.
	Line int `json:"line,omitempty"`
	// FileLine is the 1-based line in the manifest file, when the finding
	// came from one (lint and render -f set it where the value's lines map
	// onto the file's, as in a literal block).
	FileLine int    `json:"fileLine,omitempty"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
	// Reason is a stable, machine-readable rule name (used for metrics and
	// Event reasons).
	Reason string `json:"reason"`
}

// Where renders the location part of a finding: "mapRoles[2] (permissionset
// Admin) groups, line 7 of mapRoles", or, from a manifest file, "..., line
// 12 (line 7 of mapRoles)".
func (f Finding) Where() string {
	var b strings.Builder
	b.WriteString(f.Key)
	if f.Index != nil {
		fmt.Fprintf(&b, "[%d]", *f.Index)
	}
	if f.Entry != "" {
		fmt.Fprintf(&b, " (%s)", f.Entry)
	}
	if f.Field != "" && f.Index != nil {
		fmt.Fprintf(&b, " %s", f.Field)
	}
	switch {
	case f.FileLine > 0 && f.Line > 0:
		fmt.Fprintf(&b, ", line %d (line %d of %s)", f.FileLine, f.Line, f.Key)
	case f.FileLine > 0:
		fmt.Fprintf(&b, ", line %d", f.FileLine)
	case f.Line > 0 && f.Key != "":
		fmt.Fprintf(&b, ", line %d of %s", f.Line, f.Key)
	case f.Line > 0:
		fmt.Fprintf(&b, ", line %d", f.Line)
	}
	if b.Len() == 0 {
		return "aws-auth"
	}
	return b.String()
}

// String is the one-line form shown to people: where, what, and the fix.
func (f Finding) String() string {
	s := f.Where() + ": " + f.Message
	if f.Hint != "" {
		s += " Fix: " + f.Hint
	}
	return s
}

// Findings is a list of findings with helpers for the two severities.
type Findings []Finding

// Errors returns the findings that reject the object.
func (fs Findings) Errors() Findings { return fs.filter(SeverityError) }

// Warnings returns the findings that are only shown.
func (fs Findings) Warnings() Findings { return fs.filter(SeverityWarning) }

// HasErrors reports whether any finding rejects the object.
func (fs Findings) HasErrors() bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

func (fs Findings) filter(s Severity) Findings {
	var out Findings
	for _, f := range fs {
		if f.Severity == s {
			out = append(out, f)
		}
	}
	return out
}

// Strings renders each finding on its own line.
func (fs Findings) Strings() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// MaxFindings bounds the findings the engine keeps from each reading of a
// section and from validation: a hostile aws-auth of 1 MiB could otherwise
// hold half a million, each costing memory to keep and time to show.
const MaxFindings = 1000

// List renders the first findings one line each, as String does, at most
// max of them, each cut to MaxFindingBytes, their bytes (with a separator
// of sep bytes between them) at most budget in all; omitted is how many
// were left out. Only the findings listed are rendered.
func (fs Findings) List(max, sep, budget int) (lines []string, omitted int) {
	return textcap.List(len(fs), func(i int) string { return fs[i].String() }, max, MaxFindingBytes, sep, budget)
}

// More is the line that ends a list with omitted findings left out ("" when
// none were): "... and 49900 more problem(s)", and where to see them.
func More(omitted int, noun string) string {
	if omitted <= 0 {
		return ""
	}
	return fmt.Sprintf("... and %d more %s(s); `aws-auth-webhook lint -o json` lists them all", omitted, noun)
}
