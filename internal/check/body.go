package check

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/negotiate"
)

// clientReason is the reason a denied client is shown. A policy denial names
// the route and that its policy denied, never whom the route allows
// (contract section 8): that detail stays in d.Reason, for the audit log
// (impersonated requests), the "denied" debug log, and administrators'
// explain and preview. Every other denial (no or bad token, impersonation
// refused, no route) is about the request itself and is shown as it is.
func clientReason(d *decision.Decision) string {
	if d.Status != decision.StatusForbidden || d.Impersonation.Refusal != "" {
		return d.Reason
	}
	if d.Route == nil {
		return "access denied by the policy"
	}
	return d.Route.ClientDenial()
}

var denyPage = template.Must(template.New("deny").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Status}} {{.StatusText}}</title>
<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:34rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .75rem}p{margin:.5rem 0}.id{color:#667085;font-size:.85rem;word-break:break-all}
a{color:#2f5bea}
</style></head>
<body><main>
<h1>{{.Status}} {{.StatusText}}</h1>
<p>{{.Reason}}</p>
<p><a href="/.pomerium/">Your session</a></p>
<p class="id">Request ID: {{.RequestID}}</p>
</main></body></html>
`))

// renderBody writes the denial body in the client's format; every format
// names the reason and the request id.
func renderBody(format negotiate.Format, status int, reason, requestID string) string {
	switch format {
	case negotiate.JSON:
		b, _ := json.Marshal(struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}{reason, requestID})
		return string(b)
	case negotiate.HTML:
		var buf bytes.Buffer
		_ = denyPage.Execute(&buf, struct {
			Status                        int
			StatusText, Reason, RequestID string
		}{status, http.StatusText(status), reason, requestID})
		return buf.String()
	}
	return reason + "\nrequest id: " + requestID + "\n"
}
