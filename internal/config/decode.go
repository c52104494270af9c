package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
	"go.yaml.in/yaml/v3"
)

const (
	// maxAliasVisits caps how many nodes are decoded through aliases and
	// merge keys, so a "billion laughs" document cannot make us loop.
	maxAliasVisits = 1_000_000
	// maxProblems caps the problems reported; past it, one more says so.
	maxProblems = 1000
	// maxMergeDepth caps merge keys nested in merged mappings.
	maxMergeDepth = 32
)

// pos is where a value came from.
type pos struct {
	file      string
	line, col int
	// key, when set, is reported instead of the path (environment variables).
	key string
	// items are the entries of a list value, which locate "path[i]".
	items []*yaml.Node
}

// field is one YAML key of a struct.
type field struct {
	key   string
	index int
}

type fieldSet struct {
	list  []field
	byKey map[string]int // key -> index in list
}

func fieldsOf(t reflect.Type) *fieldSet {
	fs := &fieldSet{byKey: map[string]int{}}
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !t.Field(i).IsExported() {
			continue
		}
		fs.byKey[tag] = len(fs.list)
		fs.list = append(fs.list, field{key: tag, index: i})
	}
	return fs
}

var (
	configFields = fieldsOf(reflect.TypeFor[Config]())
	routeFields  = fieldsOf(reflect.TypeFor[policy.RouteSpec]())

	durationType   = reflect.TypeFor[Duration]()
	routeSpecsType = reflect.TypeFor[[]policy.RouteSpec]()
)

// decoder walks yaml.v3 nodes into a Config, recording where every value came
// from and every problem met on the way.
type decoder struct {
	file     string // source of the nodes being decoded
	mainFile string
	problems Problems
	// where maps a path ("policy[2].from") to where its value came from.
	where map[string]pos
	// bad holds the paths that already have a problem, so that later checks
	// of the same value stay quiet.
	bad map[string]bool

	inAlias     int
	aliasVisits int
	exhausted   bool
	truncated   bool
	merging     map[*yaml.Node]bool

	// routePaths[i] is the path of c.Policy[i].
	routePaths []string
	// claimHeaders is jwt_claims_headers as read, headers included.
	claimHeaders []ClaimHeader
}

// claimHeadersKey is decoded by decodeClaimHeaders, not by its field's type.
const claimHeadersKey = "jwt_claims_headers"

func newDecoder(file string) *decoder {
	return &decoder{file: file, mainFile: file, where: map[string]pos{}, bad: map[string]bool{}, merging: map[*yaml.Node]bool{}}
}

func (d *decoder) add(p pos, path, msg string) {
	d.bad[path] = true
	if len(d.problems) >= maxProblems {
		if !d.truncated {
			d.truncated = true
			d.problems = append(d.problems, Problem{File: d.mainFile, Msg: fmt.Sprintf("too many problems; stopped after %d", maxProblems)})
		}
		return
	}
	key := path
	if p.key != "" {
		key = p.key
	}
	d.problems = append(d.problems, Problem{File: p.file, Line: p.line, Column: p.col, Key: key, Msg: msg})
}

func (d *decoder) nodePos(n *yaml.Node) pos { return pos{file: d.file, line: n.Line, col: n.Column} }

// at reports a problem at node n.
func (d *decoder) at(n *yaml.Node, path, msg string) { d.add(d.nodePos(n), path, msg) }

// atPath reports a problem at the recorded place of path, or of its nearest
// recorded parent, unless path already has one (a value that did not decode
// is not checked again).
func (d *decoder) atPath(path, msg string) {
	if d.bad[path] {
		return
	}
	d.add(d.lookup(path), path, msg)
}

func (d *decoder) lookup(path string) pos {
	for p := path; p != ""; p = parentPath(p) {
		if w, ok := d.where[p]; ok {
			return w
		}
		// An entry of a recorded list.
		if i := strings.LastIndexByte(p, '['); i > 0 && strings.HasSuffix(p, "]") {
			if w, ok := d.where[p[:i]]; ok && w.items != nil {
				if n, err := strconv.Atoi(p[i+1 : len(p)-1]); err == nil && n >= 0 && n < len(w.items) {
					return pos{file: w.file, line: w.items[n].Line, col: w.items[n].Column}
				}
			}
		}
	}
	return pos{file: d.mainFile}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// forget drops what is recorded for path and below, the file's problems with
// it, when an environment variable replaces the file's value: the effective
// config is what is checked.
func (d *decoder) forget(path string) {
	under := func(p string) bool {
		return p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[")
	}
	for p := range d.where {
		if under(p) {
			delete(d.where, p)
		}
	}
	for p := range d.bad {
		if under(p) {
			delete(d.bad, p)
		}
	}
	kept := d.problems[:0]
	for _, p := range d.problems {
		if p.File != d.mainFile || !under(p.Key) {
			kept = append(kept, p)
		}
	}
	d.problems = kept
}

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

// enter follows an alias; target is nil when it dangles. While aliased,
// visits count against the alias budget; pair every enter with a leave.
func (d *decoder) enter(n *yaml.Node) (target *yaml.Node, aliased bool) {
	if n.Kind != yaml.AliasNode {
		return n, false
	}
	d.inAlias++
	t := n
	for i := 0; t != nil && t.Kind == yaml.AliasNode; i++ {
		if i > 64 {
			return nil, true
		}
		t = t.Alias
	}
	return t, true
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
		if kt == nil || kt.Kind != yaml.ScalarNode {
			d.at(k, path, "keys must be strings, found "+kindName(orSelf(kt, k)))
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

func orSelf(n, self *yaml.Node) *yaml.Node {
	if n == nil {
		return self
	}
	return n
}

// mergeSources returns the mappings a merge key's value names: one mapping or
// a list of them.
func (d *decoder) mergeSources(v *yaml.Node, path string) []*yaml.Node {
	t, aliased := d.enter(v)
	defer d.leave(aliased)
	if t == nil || !d.visit(v) {
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
			if it == nil || it.Kind != yaml.MappingNode {
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

// decodeStruct decodes mapping n into the struct v. It returns the keys that
// were given a non-null value.
func (d *decoder) decodeStruct(v reflect.Value, n *yaml.Node, path string, fs *fieldSet) map[string]bool {
	set := map[string]bool{}
	for _, p := range d.pairs(n, path, 0) {
		if d.exhausted {
			break
		}
		key := p.key.Value
		i, ok := fs.byKey[key]
		if !ok {
			d.at(p.key, joinPath(path, key), unknownKey(key, fs))
			continue
		}
		f := fs.list[i]
		fpath := joinPath(path, key)
		if p.merged {
			d.inAlias++
		}
		d.where[fpath] = d.nodePos(p.value)
		var null bool
		if fs == configFields && key == claimHeadersKey {
			null = d.claimHeadersValue(p.value, fpath)
		} else {
			null = d.decodeValue(v.Field(f.index), p.value, fpath)
		}
		if p.merged {
			d.inAlias--
		}
		if !null {
			set[key] = true
		}
	}
	return set
}

// unknownKey words an unknown key's problem, with a hint when the key looks
// like a known one or belongs elsewhere.
func unknownKey(key string, fs *fieldSet) string {
	msg := fmt.Sprintf("unknown key %q", key)
	other := routeFields
	if fs == routeFields {
		other = configFields
	}
	switch {
	case fs == configFields && key == "routes":
		return msg + " (routes go under \"policy\")"
	case fs == routeFields && key == "to":
		return msg + " (the upstream is configured in Envoy, not here)"
	}
	if best := closest(key, fs); best != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", best)
	}
	if _, ok := other.byKey[key]; ok {
		if fs == routeFields {
			return msg + " in a route (it is a top-level key: check the indentation)"
		}
		return msg + " (it is a route key: routes go in the list under \"policy\")"
	}
	return msg
}

// closest returns the known key nearest to key (case-insensitive match, or at
// most two edits away), or "".
func closest(key string, fs *fieldSet) string {
	lower := strings.ToLower(key)
	best, bestDist := "", 3
	for _, f := range fs.list {
		if f.key == lower {
			return f.key
		}
		if len(lower) > 24 || len(f.key) > 40 {
			continue
		}
		if dd := editDistance(lower, f.key); dd < bestDist && dd*3 <= len(f.key) {
			best, bestDist = f.key, dd
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeValue decodes raw into v according to v's type. It reports whether
// the value was null (the key counts as unset).
func (d *decoder) decodeValue(v reflect.Value, raw *yaml.Node, path string) (null bool) {
	n, aliased := d.enter(raw)
	defer d.leave(aliased)
	if n == nil {
		d.at(raw, path, "alias does not resolve")
		return true
	}
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
			if item == nil || item.Kind != yaml.ScalarNode {
				d.at(itemRaw, indexPath(path, i), "each entry must be a string, found "+kindName(orSelf(item, itemRaw)))
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
		if p.merged {
			d.inAlias++
		}
		vn, aliased := d.enter(p.value)
		ok := d.visit(p.value)
		d.leave(aliased)
		if p.merged {
			d.inAlias--
		}
		if !ok {
			break
		}
		d.where[kpath] = d.nodePos(p.key)
		switch {
		case vn == nil || vn.Kind != yaml.ScalarNode:
			d.at(p.value, kpath, "must be a string, found "+kindName(orSelf(vn, p.value)))
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
	if n == nil {
		d.at(raw, path, "alias does not resolve")
		return true
	}
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
			if p.merged {
				d.inAlias++
			}
			vn, aliased := d.enter(p.value)
			ok := d.visit(p.value)
			d.leave(aliased)
			if p.merged {
				d.inAlias--
			}
			if !ok {
				break
			}
			if vn == nil || vn.Kind != yaml.ScalarNode {
				d.at(p.value, ipath, "the claim for header "+strconv.Quote(p.key.Value)+" must be a string, found "+kindName(orSelf(vn, p.value)))
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
		switch {
		case item == nil:
			d.at(itemRaw, ipath, "alias does not resolve")
		case item.Kind != yaml.MappingNode:
			d.at(itemRaw, ipath, "each route must be a mapping of keys (name, from, ...), found "+kindName(item))
		default:
			var spec policy.RouteSpec
			d.decodeStruct(reflect.ValueOf(&spec).Elem(), item, ipath, routeFields)
			specs = append(specs, spec)
			d.routePaths = append(d.routePaths, ipath)
		}
		d.leave(aliased)
	}
	return specs
}

// parseYAML reads one YAML document; root is nil for an empty one. Syntax
// errors are problems located by line.
func (d *decoder) parseYAML(data []byte, key string) (root *yaml.Node) {
	defer func() {
		// yaml.v3 turns its own failures into errors; anything else it
		// panics with is a bug, which must not take the sidecar down.
		if r := recover(); r != nil {
			root = nil
			d.add(pos{file: d.file}, key, fmt.Sprintf("cannot parse YAML: %v", r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(err, key)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.add(pos{file: d.file, line: next.Line, col: next.Column}, key, "a second YAML document: the config is a single document")
	case !errors.Is(err, io.EOF):
		d.syntaxError(err, key)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxError(err error, key string) {
	msg := err.Error()
	p := pos{file: d.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.add(p, key, "invalid YAML: "+msg)
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

// clip keeps quoted user input short in messages.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// applyEnv overrides keys from the environment: each key's name in upper
// case. Empty variables count as unset, as in Pomerium (viper).
func (d *decoder) applyEnv(c *Config, set map[string]bool, lookupEnv func(string) (string, bool)) {
	if lookupEnv == nil {
		return
	}
	v := reflect.ValueOf(c).Elem()
	for _, f := range configFields.list {
		name := strings.ToUpper(f.key)
		val, ok := lookupEnv(name)
		if !ok || strings.TrimSpace(val) == "" {
			continue
		}
		d.forget(f.key)
		d.where[f.key] = pos{file: "env", key: name}
		fv := v.Field(f.index)
		fv.Set(reflect.Zero(fv.Type()))
		set[f.key] = true
		d.decodeEnv(fv, val, f.key, name)
	}
}

func (d *decoder) decodeEnv(v reflect.Value, val, path, name string) {
	if path == claimHeadersKey {
		d.claimHeaders = claimHeadersFromList(splitClaims(val))
		return
	}
	switch v.Type() {
	case durationType:
		dur, err := parseDuration(val)
		if err != nil {
			d.atPath(path, err.Error())
			return
		}
		v.SetInt(int64(dur))
		return
	case routeSpecsType:
		v.Set(reflect.ValueOf(d.decodeEnvPolicy(val, name)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(strings.TrimSpace(val))
	case reflect.Pointer, reflect.Bool:
		b, err := parseBool(val)
		if err != nil {
			d.atPath(path, err.Error())
			return
		}
		if v.Kind() == reflect.Bool {
			v.SetBool(b)
		} else {
			v.Set(reflect.ValueOf(&b))
		}
	case reflect.Slice:
		v.Set(reflect.ValueOf(identity.SplitList(val)).Convert(v.Type()))
	default:
		d.atPath(path, "cannot be set from the environment")
	}
}

// decodeEnvPolicy reads POLICY: base64 of a YAML list of routes. Problems in
// it are located by line and column in the decoded YAML, with file "env" and
// keys "POLICY[i].field".
func (d *decoder) decodeEnvPolicy(val, name string) []policy.RouteSpec {
	val = strings.TrimSpace(val)
	data, err := base64.StdEncoding.DecodeString(val)
	if err != nil {
		data, err = base64.RawStdEncoding.DecodeString(val)
	}
	if err != nil {
		d.atPath(strings.ToLower(name), "must be base64 of a YAML list of routes; it is not valid base64")
		return nil
	}
	if len(data) > MaxSize {
		d.atPath(strings.ToLower(name), "decodes to more than 4 MiB")
		return nil
	}
	saved := d.file
	d.file = "env"
	defer func() { d.file = saved }()
	root := d.parseYAML(data, name)
	if root == nil || isNull(root) {
		return nil
	}
	return d.decodeRoutes(root, name)
}
