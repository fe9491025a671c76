package awsauth

import (
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// itemShape is an entry's goyaml.v3 tree as far as the engine reads an
// entry it does not edit: the item's kind and position and its key: value
// pairs, without the tree. A goyaml.v3 tree costs about 2 KiB per entry;
// the shape a fifth of that, so an item read on its own keeps its shape
// (in the ItemCache, shared by every reading of that text) and its tree is
// read again only for the few entries an edit changes (entry.own).
//
// Lines are the tree's: counted from the item's first line for an item
// read on its own, from the key's first line for one read whole.
type itemShape struct {
	// line and column are where the item's node is; for an alias item
	// (whole reading only) kind, itemLine and pairs are its target's.
	line, column int
	alias        bool
	kind         yaml.Kind
	null         bool // a scalar goyaml.v3 reads as null
	itemLine     int
	pairs        []shapePair
	// firsts indexes, in order, the pairs the entry reads its fields
	// from: the first of each lowercased key that is a plain key, not a
	// merge key (entry.read reports the others).
	firsts []int

	// roleKeys are the identity keys of the item's rolearn keys, made
	// once, when first needed (collectRoleKeys).
	roleKeysOnce sync.Once
	roleKeys     []string
}

// roleIdentities returns the identity keys of the valid role ARNs the item
// holds under a rolearn key of any spelling.
func (s *itemShape) roleIdentities() []string {
	s.roleKeysOnce.Do(func() {
		for _, p := range s.pairs {
			if k, ok := roleIdentity(p.key, p.value); ok {
				s.roleKeys = append(s.roleKeys, k)
			}
		}
	})
	return s.roleKeys
}

// shapePair is one key: value of a mapping item, as goyaml.v3 reads it.
type shapePair struct {
	key     string // the key's text
	folded  string // foldKey(key): how the authenticator matches it
	keyKind yaml.Kind
	merge   bool // a YAML merge key (<<)
	keyLine int
	valKind yaml.Kind
	value   string // a scalar's text; an alias's anchor name
	valLine int
	// itemLines are the lines of a sequence value's items, kept for
	// accessPolicies (whose findings name the line of each policy).
	itemLines []int
}

// readShape reads an item's shape from its tree.
func readShape(n *yaml.Node) *itemShape {
	s := &itemShape{line: n.Line, column: n.Column}
	if n.Kind == yaml.AliasNode {
		s.alias, n = true, n.Alias
	}
	s.kind, s.itemLine = n.Kind, n.Line
	s.null = n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	if n.Kind != yaml.MappingNode || len(n.Content) < 2 {
		return s
	}
	s.pairs = make([]shapePair, 0, len(n.Content)/2)
	for j := 0; j+1 < len(n.Content); j += 2 {
		kn, vn := n.Content[j], n.Content[j+1]
		p := shapePair{key: kn.Value, keyKind: kn.Kind, merge: kn.ShortTag() == "!!merge", keyLine: kn.Line,
			valKind: vn.Kind, value: vn.Value, valLine: vn.Line}
		if p.keyKind == yaml.ScalarNode {
			p.folded = foldKey(kn.Value)
		}
		if p.folded == fieldAccessPolicies && vn.Kind == yaml.SequenceNode {
			p.itemLines = make([]int, len(vn.Content))
			for i, c := range vn.Content {
				p.itemLines[i] = c.Line
			}
		}
		s.pairs = append(s.pairs, p)
		if p.merge || p.keyKind != yaml.ScalarNode {
			continue
		}
		first := true
		for _, i := range s.firsts {
			if s.pairs[i].folded == p.folded {
				first = false
				break
			}
		}
		if first {
			s.firsts = append(s.firsts, len(s.pairs)-1)
		}
	}
	return s
}

// size estimates the memory a shape holds.
func (s *itemShape) size() int {
	n := 96 + 8*len(s.firsts)
	for _, p := range s.pairs {
		n += 120 + len(p.key) + len(p.folded) + len(p.value) + 8*len(p.itemLines)
	}
	return n
}

// pair is the pair the entry reads field (lowercased) from, or nil.
func (s *itemShape) pair(field string) (*shapePair, int) {
	for _, i := range s.firsts {
		if s.pairs[i].folded == field {
			return &s.pairs[i], i
		}
	}
	return nil, -1
}
