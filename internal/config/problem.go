package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config, located in its source: the file
// (or "env" for an environment variable), the line and column of the
// offending key or value when known, and the key it concerns.
type Problem struct {
	File   string
	Line   int // 1-based; 0 when the problem has no place (a missing key)
	Column int // 1-based; 0 when unknown (YAML syntax errors carry only a line)
	Key    string
	Msg    string
}

// Error renders the problem as "file:line:col: key: msg", leaving out the
// parts that are unknown.
func (p Problem) Error() string {
	var b strings.Builder
	file := p.File
	if file == "" {
		file = "config"
	}
	b.WriteString(file)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Column))
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a config. Parse and Load return it as
// their error; use errors.As to get at the individual problems.
type Problems []Problem

// Error renders one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems as a reader goes through the sources: the
// config file first, by position, then problems without a position, then
// environment variables.
func sortProblems(ps Problems, file string) {
	rank := func(p Problem) int {
		switch {
		case p.File == file && p.Line > 0:
			return 0
		case p.File == file:
			return 1
		default:
			return 2
		}
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		if a.File != b.File {
			return 0 // keep the order in which they were found
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}
