package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/csrf"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/negotiate"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/style.css
var assetFS embed.FS

var funcs = template.FuncMap{
	"absTime": absTime,
	"join":    func(s []string) string { return strings.Join(s, ", ") },
	"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// identityFields is what the "identity-fields" template needs: the id
	// prefix of its inputs and the values typed into them.
	"identityFields": func(id string, f formValues) any {
		return struct {
			ID   string
			Form formValues
		}{id, f}
	},
}

// pages are parsed once: each page template together with the layout.
var pages = func() map[string]*template.Template {
	m := make(map[string]*template.Template)
	for _, name := range []string{"dashboard.html", "sign_in.html", "error.html", "signed_out.html"} {
		m[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name))
	}
	return m
}()

// page is what every page template receives besides its own data.
type page struct {
	Title     string
	Host      string
	RequestID string
	CSRFField template.HTML
	Error     string
	Notice    string
	// SignedIn shows the sign-out button in the top bar.
	SignedIn    bool
	SignedInAs  string
	Impersonate *impersonationView // the banner, when impersonating
}

func newPage(r *http.Request, title string) page {
	return page{Title: title, Host: r.Host, RequestID: requestID(r), CSRFField: csrf.TemplateField(r)}
}

// render executes a page template into a buffer first, so a template error
// is a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("rendering page", zap.String("page", name), zap.Error(err), zap.String("request_id", requestID(r)))
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", negotiate.HTML.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error encoding JSON", http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", negotiate.JSON.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// writeText answers plain text.
func writeText(w http.ResponseWriter, r *http.Request, status int, text string) {
	w.Header().Set("Content-Type", negotiate.Text.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(text))
	}
}

// asset serves the embedded stylesheet.
func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != pathStyle {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(assetFS, "assets/style.css")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// absTime formats an instant for people, in UTC.
func absTime(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006, 15:04:05 UTC") }

// relTime says how far t is from now: "in 29 minutes", "3 minutes ago".
func relTime(t, now time.Time) string {
	d := t.Sub(now)
	if d >= 0 {
		return "in " + humanDuration(d)
	}
	return humanDuration(-d) + " ago"
}

// humanDuration writes d in its two largest units.
func humanDuration(d time.Duration) string {
	d = d.Truncate(time.Second)
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(int64(d/time.Second), "second")
	case d < time.Hour:
		return plural(int64(d/time.Minute), "minute")
	case d < 48*time.Hour:
		h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		if m == 0 {
			return plural(h, "hour")
		}
		return plural(h, "hour") + " " + plural(m, "minute")
	}
	days, h := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return plural(days, "day")
	}
	return plural(days, "day") + " " + plural(h, "hour")
}
