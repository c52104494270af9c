package web

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/signin"
)

// Bounds on what the forms accept. A session cookie must stay under the ~4 KiB
// browsers keep, so groups are bounded here and the minted token is checked
// again before it is set.
const (
	maxFormBytes   = 64 << 10
	maxFormFields  = 32
	maxEmailLen    = 254
	maxGroups      = 64
	maxGroupLen    = 256
	maxReasonRunes = 500
)

// formError is a refusal of what the user typed; its text is shown on the
// page (HTML-escaped) with status 400.
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func formErrorf(format string, args ...any) error {
	return &formError{msg: fmt.Sprintf(format, args...)}
}

// impersonateForm is a validated "sign in as" form.
type impersonateForm struct {
	Email  string // normalized (trimmed, lower-case); "" when not given
	Groups []string
	Access string // identity.AccessReadOnly or identity.AccessReadWrite
	Reason string
}

// target is whom and how the form impersonates, for the audit log.
func (f impersonateForm) target() audit.Target {
	return audit.Target{Email: f.Email, Groups: f.Groups, Access: f.Access, Reason: f.Reason}
}

// Stop reports whether the form asks to stop impersonating: no email and no groups.
func (f impersonateForm) Stop() bool { return f.Email == "" && len(f.Groups) == 0 }

// formValues are the fields as typed, kept to show the form again after a refusal.
type formValues struct {
	Email, Groups, Access, Reason string
}

func stickyValues(form url.Values) formValues {
	v := formValues{
		Email:  first(form, "email"),
		Groups: first(form, "groups"),
		Access: first(form, "access"),
		Reason: first(form, "reason"),
	}
	// Never echo bytes that are not text back into the page.
	for _, p := range []*string{&v.Email, &v.Groups, &v.Access, &v.Reason} {
		if !utf8.ValidString(*p) || strings.ContainsRune(*p, 0) {
			*p = ""
		}
		if len(*p) > 2*maxReasonRunes*utf8.UTFMax {
			*p = ""
		}
	}
	if v.Access != identity.AccessReadWrite {
		v.Access = identity.AccessReadOnly
	}
	return v
}

func first(form url.Values, name string) string {
	if vs := form[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// field returns the single value of a form field ("" when absent), refusing
// a field sent twice, bytes that are not UTF-8, and NUL.
func field(form url.Values, name string) (string, error) {
	vs := form[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", formErrorf("The %s field was sent more than once.", name)
	}
	if err := textValue(vs[0]); err != nil {
		return "", formErrorf("The %s field %s.", name, err)
	}
	return vs[0], nil
}

// textValue checks the encoding of any submitted value.
func textValue(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8 text")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

// checkForm refuses a submitted form, before any page sees it, when a field
// is repeated or a name or value is not text. Query parameters are not form
// fields and are not looked at here.
func checkForm(form url.Values) error {
	if len(form) > maxFormFields {
		return formErrorf("The form has too many fields.")
	}
	for name, vs := range form {
		if err := textValue(name); err != nil {
			return formErrorf("A form field name %s.", err)
		}
		if len(vs) > 1 {
			return formErrorf("The %s field was sent more than once.", name)
		}
		for _, v := range vs {
			if err := textValue(v); err != nil {
				return formErrorf("The %s field %s.", name, err)
			}
		}
	}
	return nil
}

// parseImpersonateForm validates the fields of POST /.pomerium/impersonate:
// email (optional, must look like an email), groups (comma list, trimmed,
// empties and duplicates dropped), access (read_only when absent) and reason
// (trimmed, required when requireReason, at most 500 characters, no control
// characters other than line breaks and tabs). No email and no groups means
// stop impersonating; access and reason are then ignored.
func parseImpersonateForm(form url.Values, requireReason bool) (impersonateForm, error) {
	var f impersonateForm
	rawEmail, err := field(form, "email")
	if err != nil {
		return f, err
	}
	rawGroups, err := field(form, "groups")
	if err != nil {
		return f, err
	}
	rawAccess, err := field(form, "access")
	if err != nil {
		return f, err
	}
	rawReason, err := field(form, "reason")
	if err != nil {
		return f, err
	}
	if f.Email, err = parseEmail(rawEmail); err != nil {
		return impersonateForm{}, err
	}
	if f.Groups, err = parseGroups(rawGroups); err != nil {
		return impersonateForm{}, err
	}
	if f.Stop() {
		return impersonateForm{}, nil
	}
	switch access := strings.TrimSpace(rawAccess); access {
	case "", identity.AccessReadOnly:
		f.Access = identity.AccessReadOnly
	case identity.AccessReadWrite:
		f.Access = identity.AccessReadWrite
	default:
		return impersonateForm{}, formErrorf("Access must be read-only (read_only) or read-write (read_write).")
	}
	if f.Reason, err = parseReason(rawReason); err != nil {
		return impersonateForm{}, err
	}
	if requireReason && f.Reason == "" {
		return impersonateForm{}, formErrorf("A reason is required to sign in as another user.")
	}
	return f, nil
}

// parsePreviewForm validates the fields of POST /.pomerium/preview: an email
// and/or groups, as for impersonation.
func parsePreviewForm(form url.Values) (email string, groups []string, err error) {
	rawEmail, err := field(form, "email")
	if err != nil {
		return "", nil, err
	}
	rawGroups, err := field(form, "groups")
	if err != nil {
		return "", nil, err
	}
	if email, err = parseEmail(rawEmail); err != nil {
		return "", nil, err
	}
	if groups, err = parseGroups(rawGroups); err != nil {
		return "", nil, err
	}
	if email == "" && len(groups) == 0 {
		return "", nil, formErrorf("Enter an email, groups, or both to preview.")
	}
	return email, groups, nil
}

// parseEmail trims and checks that s looks like an email address, returning
// it normalized; "" stays "". It must be a plain ASCII address, as Check
// requires of an impersonation target (identity.CheckAddress): a
// look-alike of a protected user would pass everything else.
func parseEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		return "", formErrorf("Enter a plain email address in ASCII, like name@example.com: accented, " +
			"full-width or other-script letters are refused, since they can pass for another user.")
	}
	bad := formErrorf("Enter a valid email address, like name@example.com.")
	if identity.CheckAddress(s) != nil {
		return "", bad
	}
	if len(s) > maxEmailLen || strings.Count(s, "@") != 1 {
		return "", bad
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || len(local) > 64 || domain == "" {
		return "", bad
	}
	for _, r := range local {
		if unicode.IsControl(r) || unicode.IsSpace(r) || strings.ContainsRune(`<>()[]\,;:"`, r) || signin.IsBidiControl(r) {
			return "", bad
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", bad
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", bad
		}
		for _, r := range label {
			if !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return "", bad
			}
		}
	}
	return identity.NormalizeEmail(s), nil
}

// parseGroups splits a comma list of groups, trimmed, empties and
// duplicates dropped, order kept.
func parseGroups(s string) ([]string, error) {
	list := identity.SplitList(s)
	if len(list) > maxGroups {
		return nil, formErrorf("Too many groups: at most %d.", maxGroups)
	}
	seen := make(map[string]struct{}, len(list))
	var out []string
	for _, g := range list {
		if len(g) > maxGroupLen {
			return nil, formErrorf("A group name is too long: at most %d characters.", maxGroupLen)
		}
		for _, r := range g {
			if unicode.IsControl(r) || signin.IsBidiControl(r) {
				return nil, formErrorf("Group names must not contain control characters.")
			}
		}
		if _, dup := seen[g]; dup {
			continue
		}
		seen[g] = struct{}{}
		out = append(out, g)
	}
	return out, nil
}

// parseReason trims the reason and bounds it. Line breaks and tabs are kept
// (it comes from a textarea; CRLF becomes LF); every other control character,
// and the bidirectional overrides that can disguise text in a log viewer, are
// refused.
func parseReason(s string) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if n := utf8.RuneCountInString(s); n > maxReasonRunes {
		return "", formErrorf("The reason is too long: at most %d characters (this one has %d).", maxReasonRunes, n)
	}
	for _, r := range s {
		if (unicode.IsControl(r) && r != '\n' && r != '\t') || signin.IsBidiControl(r) {
			return "", formErrorf("The reason must not contain control characters.")
		}
	}
	return s, nil
}
