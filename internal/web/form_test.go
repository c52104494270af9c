package web

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/signin"
	"github.com/extauthz/extauthz/internal/testkit"
)

func TestParseImpersonateForm(t *testing.T) {
	cases := []struct {
		name          string
		form          url.Values
		requireReason bool
		want          impersonateForm
		wantErr       string
	}{
		{name: "an email with a reason starts a read-only impersonation", form: url.Values{"email": {"bob@corp.example"}, "reason": {"why"}}, requireReason: true,
			want: impersonateForm{Email: "bob@corp.example", Access: "read_only", Reason: "why"}},
		{name: "the email is trimmed and lower-cased", form: url.Values{"email": {"  Bob@Corp.Example\t"}, "reason": {"r"}},
			want: impersonateForm{Email: "bob@corp.example", Access: "read_only", Reason: "r"}},
		{name: "groups are trimmed with empties and duplicates dropped", form: url.Values{"groups": {" a, ,b,a,, c "}},
			want: impersonateForm{Groups: []string{"a", "b", "c"}, Access: "read_only"}},
		{name: "read_write is accepted", form: url.Values{"email": {"b@c.d"}, "access": {" read_write "}},
			want: impersonateForm{Email: "b@c.d", Access: "read_write"}},
		{name: "the reason keeps line breaks and loses CRLF and outer space", form: url.Values{"email": {"b@c.d"}, "reason": {"  line 1\r\nline 2\t \n"}}, requireReason: true,
			want: impersonateForm{Email: "b@c.d", Access: "read_only", Reason: "line 1\nline 2"}},
		{name: "a reason of exactly 500 characters is accepted", form: url.Values{"email": {"b@c.d"}, "reason": {strings.Repeat("ü", 500)}},
			want: impersonateForm{Email: "b@c.d", Access: "read_only", Reason: strings.Repeat("ü", 500)}},
		{name: "no email and no groups stops, whatever else is sent", form: url.Values{"email": {" "}, "groups": {" , "}, "access": {"bogus"}}, requireReason: true,
			want: impersonateForm{}},
		{name: "an empty form stops", form: url.Values{}, requireReason: true, want: impersonateForm{}},
		{name: "a missing reason is refused when required", form: url.Values{"email": {"b@c.d"}}, requireReason: true, wantErr: "A reason is required"},
		{name: "a 501-character reason is refused", form: url.Values{"email": {"b@c.d"}, "reason": {strings.Repeat("x", 501)}}, wantErr: "at most 500"},
		{name: "an escape character in the reason is refused", form: url.Values{"email": {"b@c.d"}, "reason": {"a\x1bb"}}, wantErr: "control characters"},
		{name: "a bidi override in the reason is refused", form: url.Values{"email": {"b@c.d"}, "reason": {"a\u202eb"}}, wantErr: "control characters"},
		{name: "a control character in a group is refused", form: url.Values{"groups": {"a\x07"}}, wantErr: "control characters"},
		{name: "a very long group name is refused", form: url.Values{"groups": {strings.Repeat("g", 257)}}, wantErr: "too long"},
		{name: "an unknown access is refused", form: url.Values{"email": {"b@c.d"}, "access": {"admin"}}, wantErr: "Access must be"},
		{name: "a repeated field is refused", form: url.Values{"email": {"b@c.d", "e@f.g"}}, wantErr: "more than once"},
		{name: "a NUL is refused", form: url.Values{"email": {"b@c.d"}, "reason": {"a\x00"}}, wantErr: "NUL"},
		{name: "bytes that are not UTF-8 are refused", form: url.Values{"groups": {"\xff"}}, wantErr: "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseImpersonateForm(c.form, c.requireReason)
			if c.wantErr != "" {
				var fe *formError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseEmail(t *testing.T) {
	good := []string{"a@b", "bob@corp.example", "first.last+tag@sub.example.co", "o'neil@corp.example"}
	bad := []string{"bob", "@corp", "bob@", "a@b@c", "a b@c.d", "a@b c", "<a>@b.c", "a@-b.c", "a@b..c", ".a@b.c", "a..b@c.d", "a\x00@b.c", "a\n@b.c", strings.Repeat("a", 65) + "@b.c", "a@" + strings.Repeat("b", 64) + ".c", "a@b_c.d",
		"ünï@exämple.de"}
	for _, e := range good {
		t.Run("the address "+e+" is accepted", func(t *testing.T) {
			if _, err := parseEmail(e); err != nil {
				t.Error(err)
			}
		})
	}
	for _, e := range bad {
		t.Run("the address "+strconvQuote(e)+" is refused", func(t *testing.T) {
			if _, err := parseEmail(e); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestParseEmailRefusesLookAlikes: an impersonation target must be a plain
// ASCII address, so that no look-alike of a protected user can be
// impersonated (contract section 8); the page says why.
func TestParseEmailRefusesLookAlikes(t *testing.T) {
	for what, e := range testkit.LookAlikeAddresses {
		t.Run("a target with "+what+" is refused with a clear error", func(t *testing.T) {
			_, err := parseEmail(e)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "plain email address in ASCII") {
				t.Fatalf("error %q does not say the address must be plain ASCII", err)
			}
		})
	}
}

func strconvQuote(s string) string {
	if len(s) > 30 {
		s = s[:30] + "…"
	}
	return strings.NewReplacer("\n", `\n`, "\x00", `\0`).Replace(s)
}

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0 seconds"},
		{time.Second, "1 second"},
		{59*time.Second + 900*time.Millisecond, "59 seconds"},
		{time.Minute, "1 minute"},
		{29*time.Minute + 59*time.Second, "29 minutes"},
		{time.Hour, "1 hour"},
		{time.Hour + 5*time.Minute, "1 hour 5 minutes"},
		{14 * time.Hour, "14 hours"},
		{72 * time.Hour, "3 days"},
		{50 * time.Hour, "2 days 2 hours"},
	}
	for _, c := range cases {
		t.Run("a duration of "+c.d.String()+" reads "+c.want, func(t *testing.T) {
			if got := humanDuration(c.d); got != c.want {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestPastedToken(t *testing.T) {
	for in, want := range map[string]string{
		"abc":                                "abc",
		"  abc \n":                           "abc",
		"Pomerium abc":                       "abc",
		"pomerium abc":                       "abc",
		"Bearer Pomerium-abc":                "abc",
		"Authorization: Pomerium abc":        "abc",
		"Authorization: Bearer Pomerium-abc": "abc",
	} {
		t.Run("the paste "+strconvQuote(in)+" yields the bare token", func(t *testing.T) {
			if got := pastedToken(in); got != want {
				t.Errorf("got %q", got)
			}
		})
	}
}

// FuzzImpersonateForm: no body panics the parser, every refusal is a
// formError, and every accepted form holds only what the rules allow and
// parses to itself again.
func FuzzImpersonateForm(f *testing.F) {
	seeds := []string{
		"email=bob%40corp.example&reason=why",
		"email=bob%40corp.example&groups=a,+b,,c&access=read_write&reason=r",
		"groups=%20,%20&email=",
		"email=a&email=b",
		"email=%00&reason=%ff",
		"reason=" + strings.Repeat("x", 600) + "&email=b%40c.d",
		"reason=line%0D%0Abreak&email=b%40c.d",
		"email=%E2%80%AE%40x&groups=%1b",
		"access=read_only",
		"email=bob%40corp.example&reason=%E2%80%AEevil",
		"%ff=1&email=b%40c.d",
		"email=b%40c.d;reason=r",
	}
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, requireReason bool) {
		values, err := url.ParseQuery(body)
		if err != nil {
			return // readForm answers 400 before the parser runs
		}
		got, err := parseImpersonateForm(values, requireReason)
		if err != nil {
			var fe *formError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a formError", err)
			}
			if !utf8.ValidString(err.Error()) || strings.ContainsRune(err.Error(), 0) {
				t.Fatalf("error text %q is not clean", err.Error())
			}
			return
		}
		if got.Stop() {
			if !reflect.DeepEqual(got, impersonateForm{}) {
				t.Fatalf("a stop carries values: %+v", got)
			}
			return
		}
		if got.Email != "" {
			if _, err := parseEmail(got.Email); err != nil || got.Email != strings.ToLower(strings.TrimSpace(got.Email)) {
				t.Fatalf("accepted email %q", got.Email)
			}
		}
		if len(got.Groups) > maxGroups {
			t.Fatalf("%d groups", len(got.Groups))
		}
		seen := map[string]bool{}
		for _, g := range got.Groups {
			if g == "" || g != strings.TrimSpace(g) || strings.Contains(g, ",") || len(g) > maxGroupLen || seen[g] || !clean(g, false) {
				t.Fatalf("accepted group %q", g)
			}
			seen[g] = true
		}
		if got.Access != "read_only" && got.Access != "read_write" {
			t.Fatalf("access %q", got.Access)
		}
		if requireReason && got.Reason == "" {
			t.Fatal("accepted without a reason")
		}
		if utf8.RuneCountInString(got.Reason) > maxReasonRunes || got.Reason != strings.TrimSpace(got.Reason) || !clean(got.Reason, true) || strings.Contains(got.Reason, "\r\n") {
			t.Fatalf("accepted reason %q", got.Reason)
		}
		// What was accepted, sent again, is accepted unchanged.
		again, err := parseImpersonateForm(url.Values{
			"email":  {got.Email},
			"groups": {strings.Join(got.Groups, ",")},
			"access": {got.Access},
			"reason": {got.Reason},
		}, requireReason)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("not stable: %+v then %+v, %v", got, again, err)
		}
	})
}

// clean reports whether s is UTF-8 without NUL, control characters (but
// line breaks and tabs when multiline) or bidi controls.
func clean(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || signin.IsBidiControl(r) {
			return false
		}
	}
	return true
}
