package config

// This file words unknown keys: "did you mean" by edit distance, and keys
// that belong to the other level (a route key at the top, or the reverse).

import (
	"fmt"
	"strings"
)

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
