package testkit

import (
	"io"
	"net/http"
	"testing"
)

// Answer is an HTTP response read whole (its body up to 1 MiB).
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// Get sends GET url through c with header, name and value pairs added as
// written (not canonicalized, a repeated name kept twice), and reads the
// answer; a transport error ends the test.
func Get(t testing.TB, c *http.Client, url string, header ...string) Answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header[header[i]] = append(req.Header[header[i]], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return ReadAnswer(resp)
}

// ReadAnswer reads resp whole and closes its body.
func ReadAnswer(resp *http.Response) Answer {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return Answer{resp.StatusCode, resp.Header, string(body)}
}
