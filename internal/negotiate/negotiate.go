// Package negotiate picks the body format of an answer from an Accept header:
// an HTML page for browsers, JSON for API clients that ask for it, plain text
// for everything else (curl's "*/*" included).
package negotiate

import (
	"strconv"
	"strings"
)

// Format is a response body format.
type Format int

// Formats, in the order ties are broken when weights are equal.
const (
	Text Format = iota
	HTML
	JSON
)

// ContentType is the Content-Type header value for a format.
func (f Format) ContentType() string {
	switch f {
	case HTML:
		return "text/html; charset=utf-8"
	case JSON:
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// maxAcceptEntries bounds the work done on a hostile header.
const maxAcceptEntries = 32

// Preferred returns the format the client prefers. Only explicit text/html or
// application/json entries count; wildcards alone mean plain text, so that
// scripts sending "*/*" get a readable line, not a page.
func Preferred(accept string) Format {
	var htmlQ, jsonQ float64 = -1, -1
	for i := 0; accept != "" && i < maxAcceptEntries; i++ {
		var entry string
		entry, accept, _ = strings.Cut(accept, ",")
		mediaType, params, _ := strings.Cut(entry, ";")
		q := quality(params)
		switch strings.ToLower(strings.TrimSpace(mediaType)) {
		case "text/html", "application/xhtml+xml":
			htmlQ = max(htmlQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	switch {
	case jsonQ > 0 && jsonQ >= htmlQ:
		return JSON
	case htmlQ > 0:
		return HTML
	}
	return Text
}

// quality reads q from media-range parameters; 1 when absent, 0 when unreadable.
func quality(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}
