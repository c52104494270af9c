package config

// This file decodes one YAML value into a Config field by the field's type
// (strings, booleans, durations, lists, maps, claim headers, routes),
// reporting a located problem instead of failing on the first one.

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/extauthz/extauthz/internal/policy"
	"go.yaml.in/yaml/v3"
)

// decodeValue decodes raw into v according to v's type. It reports whether
// the value was null (the key counts as unset).
func (d *decoder) decodeValue(v reflect.Value, raw *yaml.Node, path string) (null bool) {
	n, aliased := d.enter(raw)
	defer d.leave(aliased)
	if !d.visit(raw) {
		return true
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return true
	}
	switch v.Type() {
	case durationType:
		if s, ok := d.scalar(raw, n, path, "a duration such as \"30m\" or \"14h\""); ok {
			if dur, err := parseDuration(s); err != nil {
				d.at(raw, path, err.Error())
			} else {
				v.SetInt(int64(dur))
			}
		}
		return false
	case routeSpecsType:
		v.Set(reflect.ValueOf(d.decodeRoutes(n, path)))
		return false
	}
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(raw, n, path, "a string"); ok {
			v.SetString(strings.TrimSpace(s))
		}
	case reflect.Bool:
		if b, ok := d.boolean(raw, n, path); ok {
			v.SetBool(b)
		}
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Bool {
			if b, ok := d.boolean(raw, n, path); ok {
				v.Set(reflect.ValueOf(&b))
			}
			return false
		}
		d.fallback(v, raw, n, path)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			v.Set(reflect.ValueOf(d.stringList(raw, n, path)).Convert(v.Type()))
			return false
		}
		d.fallback(v, raw, n, path)
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String {
			v.Set(reflect.ValueOf(d.stringMap(raw, n, path)).Convert(v.Type()))
			return false
		}
		d.fallback(v, raw, n, path)
	default:
		d.fallback(v, raw, n, path)
	}
	return false
}

// fallback lets yaml.v3 decode types this decoder does not know (fields added
// to policy.RouteSpec later), still reporting problems at the value. yaml.v3
// bounds its own alias expansion.
func (d *decoder) fallback(v reflect.Value, raw, n *yaml.Node, path string) {
	ptr := reflect.New(v.Type())
	if err := n.Decode(ptr.Interface()); err != nil {
		d.at(raw, path, strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	v.Set(ptr.Elem())
}

func (d *decoder) scalar(raw, n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.at(raw, path, "must be "+want+", found "+kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(raw, n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(raw, n, path, "true or false")
	if !ok {
		return false, false
	}
	b, err := parseBool(s)
	if err != nil {
		d.at(raw, path, err.Error())
		return false, false
	}
	return b, true
}

// stringList decodes a list of strings; a single string is a list of one.
func (d *decoder) stringList(raw, n *yaml.Node, path string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{strings.TrimSpace(n.Value)}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		// Entries are located through the list (see lookup): no per-entry
		// bookkeeping, which matters for lists reached through many aliases.
		w := d.where[path]
		w.items = n.Content
		d.where[path] = w
		for i, itemRaw := range n.Content {
			item, aliased := d.enter(itemRaw)
			ok := d.visit(itemRaw)
			d.leave(aliased)
			if !ok {
				break
			}
			if item.Kind != yaml.ScalarNode {
				d.at(itemRaw, indexPath(path, i), "each entry must be a string, found "+kindName(item))
				continue
			}
			if isNull(item) {
				out = append(out, "")
				continue
			}
			out = append(out, strings.TrimSpace(item.Value))
		}
		return out
	}
	d.at(raw, path, "must be a list of strings, found "+kindName(n))
	return nil
}

func (d *decoder) stringMap(raw, n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		d.at(raw, path, "must be a mapping of names to values, found "+kindName(n))
		return nil
	}
	out := map[string]string{}
	for _, p := range d.pairs(n, path, 0) {
		kpath := joinPath(path, p.key.Value)
		vn, ok := d.pairValue(p)
		if !ok {
			break
		}
		d.where[kpath] = d.nodePos(p.key)
		switch {
		case vn.Kind != yaml.ScalarNode:
			d.at(p.value, kpath, "must be a string, found "+kindName(vn))
		case isNull(vn):
			out[strings.TrimSpace(p.key.Value)] = ""
		default:
			out[strings.TrimSpace(p.key.Value)] = strings.TrimSpace(vn.Value)
		}
	}
	return out
}

// claimHeadersValue reads jwt_claims_headers into d.claimHeaders. It reports
// whether the value was null.
func (d *decoder) claimHeadersValue(raw *yaml.Node, path string) (null bool) {
	n, aliased := d.enter(raw)
	defer d.leave(aliased)
	d.claimHeaders = nil
	if !d.visit(raw) || isNull(n) {
		return true
	}
	d.claimHeaders = d.decodeClaimHeaders(raw, n, path)
	return false
}

// decodeClaimHeaders reads jwt_claims_headers in any of Pomerium's forms: a
// list of claims, a mapping of header name to claim, or a string of claims
// separated by commas or spaces.
func (d *decoder) decodeClaimHeaders(raw, n *yaml.Node, path string) []ClaimHeader {
	switch n.Kind {
	case yaml.MappingNode:
		var out []ClaimHeader
		for _, p := range d.pairs(n, path, 0) {
			ipath := indexPath(path, len(out))
			vn, ok := d.pairValue(p)
			if !ok {
				break
			}
			if vn.Kind != yaml.ScalarNode {
				d.at(p.value, ipath, "the claim for header "+strconv.Quote(p.key.Value)+" must be a string, found "+kindName(vn))
				continue
			}
			d.where[ipath] = d.nodePos(p.key)
			claim := ""
			if !isNull(vn) {
				claim = strings.TrimSpace(vn.Value)
			}
			out = append(out, ClaimHeader{Claim: claim, Header: strings.ToLower(strings.TrimSpace(p.key.Value))})
		}
		return out
	case yaml.ScalarNode:
		d.where[path] = d.nodePos(raw)
		return claimHeadersFromList(splitClaims(n.Value))
	}
	return claimHeadersFromList(d.stringList(raw, n, path))
}

func splitClaims(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

func claimHeadersFromList(claims []string) []ClaimHeader {
	out := make([]ClaimHeader, 0, len(claims))
	for _, c := range claims {
		out = append(out, ClaimHeader{Claim: c, Header: ClaimHeaderPrefix + strings.ToLower(c)})
	}
	return out
}

func (d *decoder) decodeRoutes(n *yaml.Node, path string) []policy.RouteSpec {
	d.routePaths = d.routePaths[:0]
	if n.Kind != yaml.SequenceNode {
		d.at(n, path, "must be a list of routes, found "+kindName(n))
		return nil
	}
	specs := make([]policy.RouteSpec, 0, len(n.Content))
	for i, itemRaw := range n.Content {
		ipath := indexPath(path, i)
		item, aliased := d.enter(itemRaw)
		if !d.visit(itemRaw) {
			d.leave(aliased)
			break
		}
		d.where[ipath] = d.nodePos(itemRaw)
		if item.Kind != yaml.MappingNode {
			d.at(itemRaw, ipath, "each route must be a mapping of keys (name, from, ...), found "+kindName(item))
		} else {
			var spec policy.RouteSpec
			d.decodeStruct(reflect.ValueOf(&spec).Elem(), item, ipath, routeFields)
			specs = append(specs, spec)
			d.routePaths = append(d.routePaths, ipath)
		}
		d.leave(aliased)
	}
	return specs
}

// parseBool accepts YAML's and Go's spellings of true and false.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "t", "y":
		return true, nil
	case "false", "no", "off", "0", "f", "n":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false, found %q", clip(s))
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	v, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			hint = " (missing unit)"
		}
		return 0, fmt.Errorf("must be a duration such as \"30m\" or \"14h\" (units h, m, s, ms), found %q%s", clip(s), hint)
	}
	return v, nil
}
