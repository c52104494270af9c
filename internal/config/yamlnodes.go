package config

// This file walks yaml.v3 nodes the way the decoder needs: aliases followed
// within a budget, merge keys (<<) expanded with the mapping's own keys winning,
// and each key's node kept so problems point at file:line:column.
//
// yaml.v3 parses (and reports syntax errors), but does not decode: its
// Decoder.KnownFields into the Config structs would check known fields,
// duplicate keys and aliasing for us, but it drops a whole mapping at its
// first duplicate key (a route with one silently disappears, the rest of the
// mapping goes unchecked, a top-level one loses shared_secret), its errors
// carry a line and no column, and a bad merge key is a fatal error with no
// place. Its alias budget also covers only what its own decoder expands, not
// nodes walked here. TestParseReportsEachProblemWhereItIs has a case for each.

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// visit counts a node decoded through an alias; false once the budget is
// spent, after which decoding stops.
func (d *decoder) visit(n *yaml.Node) bool {
	if d.exhausted {
		return false
	}
	if d.inAlias > 0 {
		d.aliasVisits++
		if d.aliasVisits > maxAliasVisits {
			d.exhausted = true
			d.at(n, "", "the document expands too many aliases (more than 1000000 nodes); refusing it")
			return false
		}
	}
	return true
}

// enter follows an alias. yaml.v3's parser has already refused an alias to
// an unknown anchor and an anchor on an alias, so the target is a real node.
// While aliased, visits count against the alias budget; pair every enter with
// a leave.
func (d *decoder) enter(n *yaml.Node) (target *yaml.Node, aliased bool) {
	if n.Kind != yaml.AliasNode {
		return n, false
	}
	d.inAlias++
	return n.Alias, true
}

func (d *decoder) leave(aliased bool) {
	if aliased {
		d.inAlias--
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing"
		}
		return "a string"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

type pair struct {
	key, value *yaml.Node
	merged     bool // came in through a merge key: decode it as aliased
}

// pairs returns the key/value pairs of mapping m with merge keys ("<<")
// expanded: keys written in m win over merged ones, and earlier merged
// mappings over later ones. Duplicate keys written in m are problems.
func (d *decoder) pairs(m *yaml.Node, path string, depth int) []pair {
	if d.merging[m] || depth > maxMergeDepth {
		d.at(m, path, "merge keys (<<) nest too deep or merge a mapping into itself")
		return nil
	}
	d.merging[m] = true
	defer delete(d.merging, m)

	var out, merges []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !d.visit(k) {
			return out
		}
		kt, aliased := d.enter(k)
		d.leave(aliased)
		if kt.Kind != yaml.ScalarNode {
			d.at(k, path, "keys must be strings, found "+kindName(kt))
			continue
		}
		if kt.ShortTag() == "!!merge" {
			merges = append(merges, pair{key: k, value: v})
			continue
		}
		if first, dup := seen[kt.Value]; dup {
			d.at(k, joinPath(path, kt.Value), fmt.Sprintf("is set twice; the first is on line %d", first.Line))
			continue
		}
		seen[kt.Value] = k
		out = append(out, pair{key: kt, value: v})
	}
	have := func(key string) bool { _, ok := seen[key]; return ok }
	// Everything reached through a merge key counts against the alias budget.
	d.inAlias++
	defer func() { d.inAlias-- }()
	for _, mp := range merges {
		for _, src := range d.mergeSources(mp.value, path) {
			for _, p := range d.pairs(src, path, depth+1) {
				if have(p.key.Value) {
					continue
				}
				seen[p.key.Value] = p.key
				p.merged = true
				out = append(out, p)
			}
			if d.exhausted {
				return out
			}
		}
	}
	return out
}

// mergeSources returns the mappings a merge key's value names: one mapping or
// a list of them.
func (d *decoder) mergeSources(v *yaml.Node, path string) []*yaml.Node {
	t, aliased := d.enter(v)
	defer d.leave(aliased)
	if !d.visit(v) {
		return nil
	}
	switch t.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{t}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, item := range t.Content {
			it, itemAliased := d.enter(item)
			d.leave(itemAliased)
			if it.Kind != yaml.MappingNode {
				d.at(item, path, "a merge key (<<) must merge a mapping or a list of mappings")
				continue
			}
			out = append(out, it)
		}
		return out
	}
	d.at(v, path, "a merge key (<<) must merge a mapping or a list of mappings")
	return nil
}

// pairValue resolves a mapping pair's value for a scalar read, within the
// alias budget (a value merged in with << counts as read through an alias).
func (d *decoder) pairValue(p pair) (*yaml.Node, bool) {
	if p.merged {
		d.inAlias++
	}
	vn, aliased := d.enter(p.value)
	ok := d.visit(p.value)
	d.leave(aliased)
	if p.merged {
		d.inAlias--
	}
	return vn, ok
}
