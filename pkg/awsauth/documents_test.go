package awsauth

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/charcheck"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/manifest"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/splice"
)

// The differential at the document level: where the authenticator (and
// kubectl, which carries a manifest's data to the apiserver) can read a
// document differently from how the webhook and its readers see it, apart
// from the entries themselves. Data-key spellings, characters that are line
// breaks or nothing at all to one reader and not to the other, look-alike
// letters, second documents, directives and tags are made here from valid
// documents, each with the document as it was meant (its intent); the
// manifest corpus adds duplicate data: and data keys, several documents in
// one file, tags, anchors and merge keys on the manifest itself.

// Spellings of a data key that the authenticator does not read.
func misspellDataKey(r *rand.Rand, k string) string {
	lookalike := map[rune]string{'a': "\u0430", 'o': "\u043e", 'p': "\u0440", 'e': "\u0435", 's': "\u0455", 'c': "\u0441", 'R': "\u0280", 'U': "\uff35", 'M': "\u039c", 'A': "\u0391"}
	switch r.IntN(17) {
	case 0:
		return strings.ToLower(k)
	case 1:
		return strings.ToUpper(k[:1]) + k[1:]
	case 2: // map_roles
		return "map_" + strings.ToLower(k[3:])
	case 3:
		return "map-" + strings.ToLower(k[3:])
	case 4: // mapRole
		return k[:len(k)-1]
	case 5:
		return k + " "
	case 6:
		return " " + k
	case 7:
		return k + "\t"
	case 8:
		return k + "\u200b"
	case 9:
		i := 1 + r.IntN(len(k)-1)
		return k[:i] + pick(r, []string{"\u200b", "\u00ad", "\u2060", "\ufeff", "\u200d"}) + k[i:]
	case 10:
		var cands []int
		for i, c := range k {
			if _, ok := lookalike[c]; ok {
				cands = append(cands, i)
			}
		}
		i := pick(r, cands)
		return k[:i] + lookalike[rune(k[i])] + k[i+1:]
	case 11:
		return k + "s"
	case 12:
		return k[:3] + k[4:] // a letter dropped
	case 13:
		return k[:1] + k[2:3] + k[1:2] + k[3:] // two letters swapped
	case 14:
		return k + "\u00a0"
	case 15: // no near miss: a name of its own
		return pick(r, []string{"roles", "users", "mappings", k + "Old", k + ".bak", "aws-auth", "entries"})
	}
	return strings.ToUpper(k)
}

// Characters that read differently from how they look, by class.
var hiddenChars = []string{
	// line breaks to the YAML parser, not on screen
	"\u2028", "\u2029", "\u0085", "\r",
	// invisible
	"\u200b", "\u00ad", "\u2060", "\ufeff", "\u200c", "\u200d", "\u180e", "\u034f", "\ufe0f",
	// bidirectional controls
	"\u202e", "\u202d", "\u2066", "\u2067", "\u2069", "\u200f", "\u061c",
	// spaces that are not U+0020
	"\u00a0", "\u2003", "\u3000", "\u2007", "\u202f",
	// controls
	"\x00", "\x07", "\x1b", "\x7f", "\u0080", "\u009b",
}

// Letters and their look-alikes (Cyrillic, Greek, fullwidth, Latin
// compatibility forms).
var lookalikes = map[byte][]string{
	'a': {"\u0430", "\u0251", "\uff41"}, 'c': {"\u0441", "\u03f2"}, 'e': {"\u0435", "\uff45"}, 'i': {"\u0456", "\u0131"},
	'o': {"\u043e", "\u03bf", "\u2134"}, 'p': {"\u0440", "\u03c1"}, 's': {"\u0455", "\ua731", "\u017f"}, 'x': {"\u0445"},
	'y': {"\u0443"}, 'r': {"\u0433"}, 'n': {"\u0578"}, 'm': {"\uff4d"}, 'd': {"\u0501"}, 'k': {"\u212a", "\u03ba"},
	'A': {"\u0391", "\u0410"}, 'S': {"\u0405"}, 'E': {"\u0395"}, '1': {"\uff11"}, '3': {"\u0417"}, ':': {"\u02d0", "\uff1a"},
	'-': {"\u2010", "\u2212"}, '/': {"\u2215", "\u2044"},
}

// mutateDocument makes a document-level variant of data and returns it
// with the document as meant (nil when the variant means what it says).
func mutateDocument(r *rand.Rand, data map[string]string) (map[string]string, map[string]string, string) {
	if len(data) == 0 {
		data = map[string]string{KeyMapRoles: okEntry}
	}
	out := maps.Clone(data)
	keys := slices.Sorted(maps.Keys(out))
	key := pick(r, keys)
	text := out[key]
	switch r.IntN(8) {
	case 0, 1: // a data key the authenticator does not read
		if !slices.Contains(dataKeys, key) {
			return out, nil, "key-kept"
		}
		bad := misspellDataKey(r, key)
		delete(out, key)
		out[bad] = text
		return out, data, fmt.Sprintf("key %q", bad)
	case 2, 3: // a character that is a line break, nothing, or a reordering
		c := pick(r, hiddenChars)
		at := pickBoundary(r, text)
		out[key] = text[:at] + c + text[at:]
		return out, data, fmt.Sprintf("char %U at %d", []rune(c)[0], at)
	case 4: // a letter that looks like another
		var at []int
		for i := 0; i < len(text); i++ {
			if _, ok := lookalikes[text[i]]; ok {
				at = append(at, i)
			}
		}
		if len(at) == 0 {
			return out, nil, "lookalike-none"
		}
		i := pick(r, at)
		c := pick(r, lookalikes[text[i]])
		out[key] = text[:i] + c + text[i+1:]
		return out, data, fmt.Sprintf("lookalike %U at %d", []rune(c)[0], i)
	case 5: // directives, document markers and root tags
		op := pick(r, []string{"%YAML 1.1\n---\n", "%YAML 1.2\n---\n", "%TAG ! tag:example.com,2000:\n---\n", "--- !!seq\n", "!!seq\n",
			"--- # start\n", "--- !!map\n", "--- !!str\n", "--- |\n", "---\n...\n", "--- >\n"})
		out[key] = op + text
		return out, data, fmt.Sprintf("prefix %q", op)
	case 6: // a document end or a second document inside the key
		ls := strings.SplitAfter(text, "\n")
		if ls[len(ls)-1] == "" {
			ls = ls[:len(ls)-1]
		}
		i := r.IntN(len(ls) + 1)
		marker := pick(r, []string{"...\n", "---\n", "... # end\n", "--- !!seq\n", "---\n- rolearn: arn:aws:iam::111122223333:role/after\n  username: after\n"})
		before := strings.Join(ls[:i], "")
		if before != "" && !strings.HasSuffix(before, "\n") {
			before += "\n" // a marker is a line of its own
		}
		out[key] = before + marker + strings.Join(ls[i:], "")
		switch {
		case i == len(ls) && strings.HasPrefix(marker, "...") && strings.HasSuffix(text, "\n"):
			return out, nil, "end marker" // a final "..." changes nothing
		case strings.HasPrefix(marker, "---") && onlyComments(ls[:i]):
			return out, nil, "start marker" // a leading "---" starts the one document
		}
		return out, data, fmt.Sprintf("marker %q at line %d", marker, i+1)
	}
	// a tag on the key's first value
	tag := pick(r, []string{"!!str ", "!!binary ", "!<tag:yaml.org,2002:str> ", "!!timestamp ", "!!float ", "!local "})
	if loc := valueLine.FindStringSubmatchIndex(text); loc != nil {
		out[key] = text[:loc[4]] + tag + text[loc[4]:]
	}
	return out, nil, fmt.Sprintf("tag %q", tag)
}

// onlyComments reports whether lines hold no YAML content.
func onlyComments(ls []string) bool {
	for _, l := range ls {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func pickBoundary(r *rand.Rand, text string) int {
	var bounds []int
	for i := range text {
		bounds = append(bounds, i)
	}
	return pick(r, append(bounds, len(text)))
}

// ---- manifests ----

// manifestOf writes data as a ConfigMap manifest, each value a literal
// block or a double-quoted string, as kubectl or a person writes it.
func manifestOf(r *rand.Rand, data map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n")
	if len(data) == 0 {
		b.WriteString("  {}\n")
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		b.WriteString("  " + yamlKey(k) + ": " + yamlValue(r, data[k]) + "\n")
	}
	return b.String()
}

func yamlKey(k string) string {
	if plain, _ := splice.QuoteLike(0, k, false); plain == k {
		return k
	}
	q, _ := json.Marshal(k)
	return string(q)
}

// yamlValue renders a data value: a literal block when its lines allow
// one, else a JSON (= YAML double-quoted) string.
func yamlValue(r *rand.Rand, v string) string {
	blockable := v != "" && !strings.ContainsAny(v, "\r\t") && strings.ToValidUTF8(v, "") == v && !strings.HasPrefix(v, " ") && !strings.HasPrefix(v, "\n")
	for _, c := range v {
		if c == '\u2028' || c == '\u2029' || c == '\u0085' || c == '\ufeff' || charcheck.RefusedByYAML(c) {
			blockable = false
		}
	}
	if blockable && r.IntN(5) != 0 {
		header := "|"
		switch {
		case !strings.HasSuffix(v, "\n"):
			header += "-"
		case strings.HasSuffix(v, "\n\n"):
			header += "+"
		}
		var b strings.Builder
		b.WriteString(header + "\n")
		for _, l := range strings.Split(strings.TrimSuffix(v, "\n"), "\n") {
			if l == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + l + "\n")
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	q, _ := json.Marshal(v)
	return string(q)
}

// mutateManifest makes a manifest-level variant. The intent of each is the
// data of the manifest it was made from (nil where the variant is meant as
// written).
func mutateManifest(r *rand.Rand, text string, actual, data map[string]string) (string, map[string]string, string) {
	other := map[string]string{KeyMapRoles: "- rolearn: arn:aws:iam::111122223333:role/other\n  username: other\n  groups: [system:masters]\n"}
	otherBlock := "  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/other\n      username: other\n      groups: [system:masters]\n"
	switch r.IntN(14) {
	case 0: // a second data:
		return text + "data:\n" + otherBlock, data, "second data:"
	case 1: // a second data: first
		return strings.Replace(text, "\ndata:\n", "\ndata:\n"+otherBlock+"data:\n", 1), data, "second data: before"
	case 2: // a data key twice
		intent := data
		if _, ok := actual[KeyMapRoles]; !ok {
			intent = nil // not twice: a key added
		}
		return strings.Replace(text, "\ndata:\n", "\ndata:\n"+otherBlock, 1), intent, "data key twice"
	case 3: // a second document
		return text + "---\n" + manifestOf(r, other), data, "second document"
	case 4:
		return manifestOf(r, other) + "---\n" + text, data, "first document"
	case 5: // metadata or kind twice
		if r.IntN(2) == 0 {
			return strings.Replace(text, "kind: ConfigMap\n", "kind: ConfigMap\nkind: Secret\n", 1), data, "kind twice"
		}
		return strings.Replace(text, "metadata:\n", "metadata:\n  name: other\nmetadata:\n", 1), data, "metadata twice"
	case 6: // a tag on data or on a value
		tag := pick(r, []string{"!!map ", "!!str ", "!foo ", "!!binary "})
		if tag == "!!map " {
			return strings.Replace(text, "\ndata:\n", "\ndata: !!map\n", 1), nil, "data tag"
		}
		if tag == "!!binary " {
			enc := base64.StdEncoding.EncodeToString([]byte(data[KeyMapRoles]))
			return strings.Replace(text, "\ndata:\n", "\ndata:\n  mapRoles: !!binary "+enc+"\n", 1), data, "binary value"
		}
		i := strings.Index(text, "\ndata:\n") + len("\ndata:\n")
		j := strings.Index(text[i:], ": ")
		if j < 0 {
			return text, nil, "no value"
		}
		return text[:i+j+2] + tag + text[i+j+2:], data, "value tag " + tag
	case 7: // an anchor and an alias, or a merge key
		if r.IntN(2) == 0 {
			return strings.Replace(text, "\ndata:\n", "\ndata:\n  <<: {mapUsers: \"- userarn: arn:aws:iam::111122223333:user/merged\\n  username: merged\\n\"}\n", 1), data, "merge key"
		}
		return strings.Replace(text, "kind: ConfigMap\n", "kind: &k ConfigMap\n", 1) + "  notes: *k\n", nil, "alias"
	case 8: // a hidden character in the manifest
		c := pick(r, hiddenChars)
		at := pickBoundary(r, text)
		return text[:at] + c + text[at:], data, fmt.Sprintf("char %U", []rune(c)[0])
	case 9: // line ends, BOM, a trailing document end
		switch r.IntN(3) {
		case 0:
			return strings.ReplaceAll(text, "\n", "\r\n"), nil, "crlf"
		case 1:
			return "\ufeff" + text, nil, "bom"
		}
		return text + "...\n", nil, "end marker"
	case 10: // a quoted or complex key
		if r.IntN(2) == 0 {
			return strings.Replace(text, "  mapRoles:", "  \"mapRoles\":", 1), nil, "quoted key"
		}
		return strings.Replace(text, "  mapRoles:", "  ? mapRoles\n  :", 1), nil, "complex key"
	case 11: // flow style data
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(data)) {
			q, _ := json.Marshal(data[k])
			parts = append(parts, yamlKey(k)+": "+string(q))
		}
		i := strings.Index(text, "\ndata:\n") + 1
		return text[:i] + "data: {" + strings.Join(parts, ", ") + "}\n", nil, "flow data"
	case 12: // YAML 1.1 words as data values
		return strings.Replace(text, "\ndata:\n", "\ndata:\n  notes: "+pick(r, []string{"yes", "on", "~", "0x1F", "1e3", "null", ".inf"})+"\n", 1), nil, "yaml11 value"
	}
	// a data key misspelt in the manifest
	if _, ok := data[KeyMapRoles]; ok && strings.Contains(text, "  mapRoles:") {
		bad := misspellDataKey(r, KeyMapRoles)
		return strings.Replace(text, "  mapRoles:", "  "+yamlKey(bad)+":", 1), data, fmt.Sprintf("key %q", bad)
	}
	return text, nil, "unchanged"
}

// kubectlData is the data kubectl apply -f sends for aws-auth: each YAML
// document converted to JSON by sigs.k8s.io/yaml (goyaml.v2), the last
// ConfigMap named aws-auth winning.
func kubectlData(text string) (map[string]string, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	var found map[string]string
	seen := false
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(doc)) == "" {
			continue
		}
		js, err := sigsyaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if string(js) == "null" {
			continue
		}
		var cm corev1.ConfigMap
		if err := json.Unmarshal(js, &cm); err != nil {
			return nil, err
		}
		if cm.Kind == "ConfigMap" && cm.Name == "aws-auth" {
			found, seen = cm.Data, true
		}
	}
	if !seen {
		return nil, errors.New("no ConfigMap aws-auth")
	}
	if found == nil {
		found = map[string]string{}
	}
	return found, nil
}

type manifestDoc struct {
	detail string
	text   string
	intent map[string]string
}

// judgeManifest decides one manifest as lint and render -f do, and returns
// how an admitted one is read differently by kubectl and the authenticator
// ("" when it is not).
func judgeManifest(doc manifestDoc) (admitted bool, damage string) {
	cm, err := manifest.Parse([]byte(doc.text))
	if err != nil || CheckObjectName(cm.Namespace, cm.Name).HasErrors() {
		return false, ""
	}
	j := judge(cm.Data)
	if !j.admitted {
		return false, ""
	}
	if j.damage != "" {
		return true, j.damage
	}
	sent, err := kubectlData(doc.text)
	switch {
	case err != nil:
		return true, fmt.Sprintf("lint admits a manifest kubectl cannot read: %v", err)
	case !maps.Equal(sent, cm.Data):
		return true, fmt.Sprintf("kubectl sends data %q, lint judged %q", sent, cm.Data)
	case doc.intent != nil:
		return true, intentDamage(cm.Data, doc.intent)
	}
	return true, ""
}

// TestManifestsAgree is the manifest-level differential: whatever lint (and
// render -f) admit, kubectl sends exactly the data that was judged, and the
// authenticator loads it as meant.
func TestManifestsAgree(t *testing.T) {
	n := envInt(t, diffNEnv, diffShortN)
	seed := uint64(envInt(t, diffSeedEnv, 1))
	r := rand.New(rand.NewPCG(seed, 0x3a17))
	gen := newCorpus(t, seed+7)

	docs := make(chan manifestDoc, 256)
	var mu sync.Mutex
	var admitted, rejected, damagedN int
	var damaged []string
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for doc := range docs {
				ok, d := judgeManifest(doc)
				mu.Lock()
				switch {
				case ok && d != "":
					admitted++
					damagedN++
					if len(damaged) < 10 {
						damaged = append(damaged, fmt.Sprintf("%s (%s):\n%s", d, doc.detail, doc.text))
					}
				case ok:
					admitted++
				default:
					rejected++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		base := gen.next()
		text := manifestOf(r, base.data)
		doc := manifestDoc{detail: base.origin + " " + base.detail, text: text, intent: base.intent}
		if r.IntN(3) != 0 {
			intent := base.intent
			if intent == nil {
				intent = base.data
			}
			var op string
			doc.text, doc.intent, op = mutateManifest(r, text, base.data, intent)
			doc.detail += " + " + op
		}
		docs <- doc
	}
	close(docs)
	wg.Wait()
	t.Logf("differential (manifests): corpus=%d admitted=%d rejected=%d admitted-damaged=%d", n, admitted, rejected, damagedN)
	sort.Strings(damaged)
	for _, d := range damaged {
		t.Errorf("admitted but read differently: %s", d)
	}
	if admitted < n/10 || rejected < n/10 {
		t.Errorf("unbalanced corpus: %d admitted, %d rejected of %d", admitted, rejected, n)
	}
}
