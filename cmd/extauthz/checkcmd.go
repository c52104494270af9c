package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/listen"
)

// Exit codes of check: like `kubectl auth can-i`, the answer is the code.
const (
	exitDenied   = 1 // any answer but OK
	exitNotAsked = 3 // the server could not be asked
)

// checkCommand sends one CheckRequest shaped as Envoy sends it and prints the
// answer; the exit code says allowed (0), denied (1) or not asked (3).
func checkCommand(e *env, args []string) error {
	fs := newFlagSet(e, "check")
	addr := fs.String("addr", "127.0.0.1:9191", "ext_authz gRPC address: host:port or unix:///path/to.sock")
	rawURL := fs.String("url", "", "request URL, e.g. http://app.localhost/reports?q=1 (required)")
	method := fs.String("method", "GET", "request method")
	token := fs.String("token", "", "send this token as \"Authorization: Pomerium <token>\"")
	route := fs.String("route", "", "context_extensions route name, as the Envoy route would pass it")
	accept := fs.String("accept", "", "Accept header (text/html to act as a browser, application/json for JSON)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	var headers listHeaderFlag
	fs.Var(&headers, "H", "extra header \"Name: value\" (repeatable)")
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	if *rawURL == "" {
		return usagef("-url is required.")
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return usagef("-url must be an absolute http or https URL, got %q.", *rawURL)
	}
	req := buildCheckRequest(u, strings.ToUpper(*method), headers)
	h := req.Attributes.Request.Http.Headers
	if *token != "" {
		h["authorization"] = "Pomerium " + *token
	}
	if *accept != "" {
		h["accept"] = *accept
	}
	if *route != "" {
		req.Attributes.ContextExtensions = map[string]string{"route": *route}
	}

	target, err := listen.ParseAddress(*addr)
	if err != nil {
		return usagef("--addr %v", err)
	}
	conn, err := grpc.NewClient(target.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return &exitError{code: exitNotAsked, err: fmt.Errorf("connecting to %s: %w", *addr, err)}
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		return &exitError{code: exitNotAsked, err: fmt.Errorf("check at %s: %w", *addr, err)}
	}
	printCheckResponse(e, resp)
	if _, ok := resp.HttpResponse.(*authv3.CheckResponse_OkResponse); !ok || resp.GetStatus().GetCode() != 0 {
		return &exitError{code: exitDenied}
	}
	return nil
}

func buildCheckRequest(u *url.URL, method string, extra listHeaderFlag) *authv3.CheckRequest {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	headers := map[string]string{
		":authority": u.Host,
		":path":      path,
		":method":    method,
		":scheme":    u.Scheme,
		"user-agent": "extauthz-check",
	}
	for _, kv := range extra {
		name := strings.ToLower(kv[0])
		if prev, ok := headers[name]; ok {
			sep := ","
			if name == "cookie" {
				sep = "; "
			}
			headers[name] = prev + sep + kv[1]
		} else {
			headers[name] = kv[1]
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method:   method,
			Headers:  headers,
			Path:     path,
			Host:     u.Host,
			Scheme:   u.Scheme,
			Protocol: "HTTP/1.1",
		}},
	}}
}

func printCheckResponse(e *env, resp *authv3.CheckResponse) {
	w := e.stdout
	switch r := resp.HttpResponse.(type) {
	case *authv3.CheckResponse_OkResponse:
		fmt.Fprintln(w, "decision: ALLOW")
		fmt.Fprintln(w, "status:   200 (request goes upstream)")
		var lines []string
		for _, h := range r.OkResponse.GetHeaders() {
			lines = append(lines, fmt.Sprintf("  set    %s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue()))
		}
		slices.Sort(lines)
		for _, name := range r.OkResponse.GetHeadersToRemove() {
			lines = append(lines, "  remove "+name)
		}
		printAssertedIdentity(w, r.OkResponse.GetHeaders())
		if len(lines) > 0 {
			fmt.Fprintln(w, "headers:")
			for _, l := range lines {
				fmt.Fprintln(w, l)
			}
		}
	case *authv3.CheckResponse_DeniedResponse:
		d := r.DeniedResponse
		fmt.Fprintln(w, "decision: DENY")
		fmt.Fprintf(w, "status:   %d\n", d.GetStatus().GetCode())
		fmt.Fprintf(w, "reason:   %s\n", resp.GetStatus().GetMessage())
		fmt.Fprintln(w, "headers:")
		for _, h := range d.GetHeaders() {
			fmt.Fprintf(w, "  %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		fmt.Fprintf(w, "body:\n%s\n", strings.TrimRight(d.GetBody(), "\n"))
	default:
		fmt.Fprintf(w, "decision: grpc status %d (%s), no HTTP response\n", resp.GetStatus().GetCode(), resp.GetStatus().GetMessage())
	}
}

// listHeaderFlag collects repeated -H "Name: value" flags.
type listHeaderFlag [][2]string

func (l *listHeaderFlag) String() string { return fmt.Sprint(*l) }
func (l *listHeaderFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q is not \"Name: value\"", v)
	}
	*l = append(*l, [2]string{name, strings.TrimSpace(value)})
	return nil
}

// printAssertedIdentity says who the upstream will see, and on an impersonated
// allow the administrator behind it, read from the assertion's claims. The
// assertion is not verified here: this is a debugging view of what the server
// just sent, not a trust decision.
func printAssertedIdentity(w io.Writer, headers []*corev3.HeaderValueOption) {
	for _, h := range headers {
		if h.GetHeader().GetKey() != "x-pomerium-jwt-assertion" {
			continue
		}
		parts := strings.Split(h.GetHeader().GetValue(), ".")
		if len(parts) != 3 {
			return
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			return
		}
		var c struct {
			Email  string   `json:"email"`
			Groups []string `json:"groups"`
			Act    *struct {
				Email string `json:"email"`
			} `json:"act"`
		}
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		fmt.Fprintf(w, "identity: %s", c.Email)
		if len(c.Groups) > 0 {
			fmt.Fprintf(w, " (groups %s)", strings.Join(c.Groups, ", "))
		}
		fmt.Fprintln(w)
		if c.Act != nil {
			fmt.Fprintf(w, "actor:    %s (impersonating)\n", c.Act.Email)
		}
		return
	}
}
