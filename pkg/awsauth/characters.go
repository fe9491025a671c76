package awsauth

import (
	"fmt"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
)

// Character rules. The text rules (checkText) judge a data key's text as a
// whole, before it is parsed: characters that the authenticator's YAML
// parser reads differently from how people see the text, or refuses. The
// value rules (charcheck.Value, applied by checkFieldCharacters and
// checkFieldNames in validate.go) judge the strings the authenticator
// compares byte for byte — ARNs, usernames, groups, permission sets,
// account IDs, field names — for characters that make a name look like
// another one. Each finding names the character as U+XXXX and its Unicode
// name.

// Line breaks to goyaml.v2 (is_break in its scanner, the same in v3) are
// CR, LF, NEL, LS and PS. Editors, terminals and `kubectl get -o yaml` show
// only LF (and CRLF) as a new line, so the other three — and a CR that is
// not part of CRLF — make what reads as one line (a comment, say) two
// lines to the authenticator: a "comment" becomes live YAML.

// checkText applies the text rules to one data key (charcheck.ScanText):
// invalid UTF-8, hidden line breaks, characters the parser refuses, and
// bidirectional controls anywhere. One finding per rule, for the first
// offending character.
func checkText(key, text string) Findings {
	var out Findings
	for _, p := range charcheck.ScanText(text) {
		f := Finding{Severity: SeverityError, Key: key, Line: p.Line, Reason: p.Kind}
		holds := "the line holds " + charcheck.Describe(p.Rune)
		switch p.Kind {
		case charcheck.TextInvalidUTF8:
			f.Message = fmt.Sprintf("the line holds a byte (0x%02X) that is not part of any UTF-8 character; the authenticator cannot read the text and would drop every mapping in %s.", p.Rune, key)
			f.Hint = "save the text as UTF-8, or delete the stray byte on that line"
		case charcheck.TextLineBreak:
			if p.Rune == '\r' {
				f.Message = holds + " (a carriage return) without a line feed after it: the authenticator's YAML parser reads it as a line break, while editors and kubectl show the text around it as one line (what looks like a comment may be live YAML)."
				f.Hint = "end lines with a plain line feed (or CRLF); delete the lone carriage return"
			} else {
				f.Message = holds + ", which the authenticator's YAML parser reads as a line break, while editors and kubectl show no new line there (what looks like a comment may be live YAML)."
				f.Hint = "replace it with a plain line break, or delete it"
			}
		case charcheck.TextRefused:
			f.Message = fmt.Sprintf("%s, which the authenticator's YAML parser refuses (\"control characters are not allowed\"): it would drop every mapping in %s.", holds, key)
			f.Hint = "delete the character"
		case charcheck.TextBidi:
			f.Message = holds + ", a bidirectional control: it changes the order in which the text around it is shown, so the line does not read as the authenticator reads it."
			f.Hint = "delete the character (it is invisible: delete the line and type it again)"
		}
		out = append(out, f)
	}
	return out
}
