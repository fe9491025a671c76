package awsauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
)

// Loaded is what aws-iam-authenticator keeps from aws-auth data, whatever
// the engine thinks of the document: its ParseMap (each key to JSON through
// sigs.k8s.io/yaml, decoded with encoding/json, each entry validated), and
// then only the entries that decoded and validated. A key that fails keeps
// what decoded before the failure, as encoding/json leaves it; the
// authenticator logs the error and serves the rest ("Only saving data that
// was good"). The lockout guard judges the stored object through this, so a
// document the engine refuses still protects whoever it maps.
type Loaded struct {
	Roles, Users []LoadedMapping
	Accounts     []string
	// Errors holds, per data key, why the authenticator reports it broken.
	Errors map[string]error
}

// LoadedMapping is one entry the authenticator keeps.
type LoadedMapping struct {
	Index    int    // the entry's position in its data key, as written
	ARN      string // rolearn or userarn, as written
	SSO      bool   // an sso: matcher (off on EKS: it matches nobody)
	Username string
	Groups   []string
	// PermissionSet is the webhook's record of intent, which the
	// authenticator ignores; kept to name the entry for people.
	PermissionSet string
}

// Label names the mapping for people: its permission set, else its ARN.
func (m LoadedMapping) Label() string {
	if m.PermissionSet != "" {
		return "permissionset " + m.PermissionSet
	}
	return m.ARN
}

// The authenticator's own types (pkg/config): the same JSON names, so
// encoding/json decodes exactly as it does there.
type (
	authRoleMapping struct {
		RoleARN  string          `json:"rolearn,omitempty"`
		SSO      *authSSOMatcher `json:"sso,omitempty"`
		Username string          `json:"username"`
		Groups   []string        `json:"groups"`
		UserID   string          `json:"userid,omitempty"`
		// Not the authenticator's: decoded raw, so it can never make
		// the decode fail where the authenticator's does not.
		PermissionSet json.RawMessage `json:"permissionset,omitempty"`
	}
	authSSOMatcher struct {
		PermissionSetName string `json:"permissionSetName"`
		AccountID         string `json:"accountID"`
		Partition         string `json:"partition,omitempty"`
	}
	authUserMapping struct {
		UserARN  string   `json:"userarn"`
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
		UserID   string   `json:"userid,omitempty"`
	}
)

var ssoPermissionSetPattern = regexp.MustCompile(`^[\w+=,.@-]{1,32}$`)

// validate is RoleMapping.Validate.
func (m *authRoleMapping) validate() error {
	switch {
	case m.RoleARN == "" && m.SSO == nil:
		return fmt.Errorf("one of rolearn or SSO must be supplied")
	case m.RoleARN != "" && m.SSO != nil:
		return fmt.Errorf("only one of rolearn or SSO can be supplied")
	case m.SSO != nil && !iamarn.ValidAccountID(m.SSO.AccountID):
		return fmt.Errorf("AccountID '%s' is not a valid AWS Account ID", m.SSO.AccountID)
	case m.SSO != nil && !ssoPermissionSetPattern.MatchString(m.SSO.PermissionSetName):
		return fmt.Errorf("PermissionSetName '%s' is not a valid AWS SSO PermissionSet Name", m.SSO.PermissionSetName)
	case m.SSO != nil && m.SSO.Partition != "" && !slices.Contains(iamarn.Partitions, m.SSO.Partition):
		return fmt.Errorf("partition '%s' is not a valid AWS partition", m.SSO.Partition)
	}
	return nil
}

// LoadAsAuthenticator returns what aws-iam-authenticator loads from data.
// The differential test holds it to the authenticator's own ParseMap.
func LoadAsAuthenticator(data map[string]string) *Loaded {
	return LoadAsAuthenticatorCached(data, nil)
}

// LoadAsAuthenticatorCached is LoadAsAuthenticator reading mapRoles and
// mapUsers item by item through cache, where that is exact (reading.go).
// Without a cache it reads each key whole: that is one reading, where item
// by item would be two (the items' trees are read too).
func LoadAsAuthenticatorCached(data map[string]string, cache ItemCache) *Loaded {
	return load(data, reading{cache: cache, whole: cache == nil})
}

func load(data map[string]string, rd reading) *Loaded {
	l := &Loaded{Errors: map[string]error{}}
	fail := func(key string, err error) {
		if l.Errors[key] == nil {
			l.Errors[key] = err
		}
	}
	if text, ok := data[KeyMapUsers]; ok && !isSkippable(text) {
		raw, err := decodeKey(text, rd, (*ItemReading).asUser)
		if err != nil {
			fail(KeyMapUsers, err)
		}
		for i, m := range raw {
			if m.UserARN == "" {
				fail(KeyMapUsers, fmt.Errorf("value for userarn must be supplied"))
				continue
			}
			l.Users = append(l.Users, LoadedMapping{Index: i, ARN: m.UserARN, Username: m.Username, Groups: m.Groups})
		}
	}
	if text, ok := data[KeyMapRoles]; ok && !isSkippable(text) {
		raw, err := decodeKey(text, rd, (*ItemReading).asRole)
		if err != nil {
			fail(KeyMapRoles, err)
		}
		for i, m := range raw {
			if err := m.validate(); err != nil {
				fail(KeyMapRoles, err)
				continue
			}
			ps, _ := jsonString(m.PermissionSet)
			l.Roles = append(l.Roles, LoadedMapping{Index: i, ARN: m.RoleARN, SSO: m.SSO != nil, Username: m.Username, Groups: m.Groups, PermissionSet: ps})
		}
	}
	if text, ok := data[KeyMapAccounts]; ok && !isSkippable(text) {
		if err := yamlv2.Unmarshal([]byte(text), &l.Accounts); err != nil {
			fail(KeyMapAccounts, err)
		}
	}
	return l
}

// decodeKey decodes a key as the authenticator does: YAML to JSON, then
// encoding/json into []T, keeping what decoded before an error. Unless
// told to read whole, it reads item by item where that is exact; an item that
// does not decode sends the key to the whole decode, whose error is the
// authenticator's.
func decodeKey[T any](text string, rd reading, decoded func(*ItemReading) (T, bool)) ([]T, error) {
	if !rd.whole {
		if _, readings, ok := readSpans(text, rd.cache); ok {
			out := make([]T, len(readings))
			for i, r := range readings {
				var ok bool
				if out[i], ok = decoded(r); !ok {
					out = nil
					break
				}
			}
			if out != nil {
				return out, nil
			}
		}
	}
	js, err := utilyaml.ToJSON([]byte(text))
	if err != nil {
		return nil, err
	}
	var raw []T
	err = json.Unmarshal(js, &raw)
	return raw, err
}

// Match returns the mappings the authenticator may pick for a caller, given
// the caller's canonical ARN (iamarn.Canonicalize), and the data key they
// are in. Like its MapStore: role mappings are kept by lowercased ARN (of
// two spellings the last wins) and user mappings by ARN as written (two
// spellings both stay); a caller matches through strings.EqualFold with its
// lowercased canonical ARN, roles before users, and when several mappings
// match, which one the authenticator uses is not defined.
func (l *Loaded) Match(canonicalARN string) ([]LoadedMapping, string) {
	return l.Matcher().Match(canonicalARN)
}

// Matcher answers Match for many callers against one Loaded: it indexes
// the mappings once, where each Match would read them all again (the
// lockout guard asks once per node role, and a hostile aws-auth has tens of
// thousands).
type Matcher struct {
	sets [2]matchSet
}

type matchSet struct {
	key string
	// byFold holds, by the ARN folded as strings.EqualFold compares it
	// (foldKey), the mappings the authenticator keeps, in the order of
	// their keys' first appearance.
	byFold map[string][]LoadedMapping
}

// Matcher indexes l for Match.
func (l *Loaded) Matcher() *Matcher {
	x := &Matcher{}
	for i, set := range []struct {
		key      string
		mappings []LoadedMapping
		fold     bool // role ARNs are kept by their lowercase
	}{{KeyMapRoles, l.Roles, true}, {KeyMapUsers, l.Users, false}} {
		// As the authenticator's map: by key, the last mapping wins, kept
		// where its key first appeared.
		at := make(map[string]int, len(set.mappings))
		kept := make([]LoadedMapping, 0, len(set.mappings))
		keys := make([]string, 0, len(set.mappings))
		for _, m := range set.mappings {
			if m.SSO { // the sso: matcher is off on EKS
				continue
			}
			k := m.ARN
			if set.fold {
				k = strings.ToLower(k)
			}
			if j, seen := at[k]; seen {
				kept[j] = m
				continue
			}
			at[k] = len(kept)
			kept = append(kept, m)
			keys = append(keys, k)
		}
		byFold := make(map[string][]LoadedMapping, len(kept))
		for j := range kept {
			f := keys[j]
			if !set.fold || !isASCII(f) { // an ASCII key lowercased is folded (foldKey)
				f = foldKey(kept[j].ARN)
			}
			if prev, ok := byFold[f]; ok {
				byFold[f] = append(prev, kept[j])
			} else {
				byFold[f] = kept[j : j+1 : j+1] // full: an append copies
			}
		}
		x.sets[i] = matchSet{key: set.key, byFold: byFold}
	}
	return x
}

// Match is Loaded.Match.
func (x *Matcher) Match(canonicalARN string) ([]LoadedMapping, string) {
	subject := foldKey(strings.ToLower(canonicalARN))
	for _, set := range x.sets {
		if out := set.byFold[subject]; len(out) > 0 {
			return slices.Clone(out), set.key
		}
	}
	return nil, ""
}

// HasAccount reports whether mapAccounts lets every principal of the
// account in (mapped as its ARN, with no groups).
func (l *Loaded) HasAccount(id string) bool { return slices.Contains(l.Accounts, id) }
