package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

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
	index []int // reflect.Value.FieldByIndex's
}

type fieldSet struct {
	list  []field
	byKey map[string]int // key -> index in list
}

func fieldsOf(t reflect.Type) *fieldSet {
	fs := &fieldSet{byKey: map[string]int{}}
	// VisibleFields promotes the fields of embedded groups (Config's
	// TokenKeys, Listeners, ...): their keys sit at the top level of the file.
	for _, f := range reflect.VisibleFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() || f.Anonymous {
			continue
		}
		fs.byKey[tag] = len(fs.list)
		fs.list = append(fs.list, field{key: tag, index: f.Index})
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
	// secretOptional lets shared_secret be missing (WithoutSecret).
	secretOptional bool
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
			null = d.decodeValue(v.FieldByIndex(f.index), p.value, fpath)
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
			d.syntaxError(err, key, data)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.add(pos{file: d.file, line: next.Line, col: next.Column}, key, "a second YAML document: the config is a single document")
	case !errors.Is(err, io.EOF):
		d.syntaxError(err, key, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxError(err error, key string, data []byte) {
	msg := err.Error()
	p := pos{file: d.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	msg = "invalid YAML: " + msg
	aliasError := strings.Contains(msg, "unknown anchor") || strings.Contains(msg, "expected alphabetic or numeric character")
	if alias := starValue(data, p.line); aliasError && alias != "" {
		msg += fmt.Sprintf(" (a value starting with * is a YAML alias: quote it, as in %q)", clip(alias))
	}
	d.add(p, key, msg)
}

// starValue is a plain value starting with "*" on line (1-based) of data,
// such as the *.corp.example of `from: *.corp.example`: YAML reads it as an
// alias, and its own error never says so. A line number of 0 means unknown:
// every line is searched.
var starValueRE = regexp.MustCompile(`(?:^|[:\[{,]\s|^\s*-\s)\s*(\*[^\s,\]}#]*)`)

func starValue(data []byte, line int) string {
	for i, l := range strings.Split(string(data), "\n") {
		if line > 0 && i+1 != line {
			continue
		}
		if m := starValueRE.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
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
