package testkit

// Impersonation targets that are not plain ASCII addresses (contract section
// 8), by what is wrong with each. identity.CheckAddress refuses every one;
// the tests of each layer that takes a target (identity, the pages' form,
// Check) walk these catalogues, so a case found once is tried everywhere.
var (
	// LookAlikeAddresses are look-alikes of the protected
	// security@corp.example, outside ASCII, which upstream collations (MySQL
	// *_ai_ci, NFKC) or a reader's eye would take for the protected user.
	LookAlikeAddresses = map[string]string{
		"full-width letters":                          "ｓｅｃｕｒｉｔｙ@corp.example",
		"an accented letter":                          "sécurity@corp.example",
		"a decomposed accent":                         "se\u0301curity@corp.example",
		"a Cyrillic е":                                "s\u0435curity@corp.example",
		"a Cyrillic с and у":                          "\u0441ec\u0443rity@corp.example",
		"a Greek omicron in the domain":               "security@c\u03bfrp.example",
		"a full-width at sign":                        "security＠corp.example",
		"a zero-width space":                          "secu\u200brity@corp.example",
		"a zero-width joiner":                         "secu\u200drity@corp.example",
		"a soft hyphen":                               "secu\u00adrity@corp.example",
		"the Kelvin sign for k":                       "\u212aeys@corp.example",
		"a mathematical bold s":                       "\U0001d42cecurity@corp.example",
		"an IDNA domain in Unicode":                   "security@bücher.example",
		"a fraction slash in the host":                "security@corp\u2044example",
		"a non-breaking space before the at":          "security\u00a0@corp.example",
		"an ideographic space":                        "security\u3000@corp.example",
		"invalid UTF-8":                               "secur\xffty@corp.example",
		"invalid UTF-8 as U+FFFD":                     "secur\ufffdty@corp.example",
		"a right-to-left override":                    "\u202esecurity@corp.example",
		"a right-to-left override reversing the text": "\u202eelpmaxe.proc@ytiruces",
	}

	// MalformedAddresses are ASCII but not one plain address. (The pages'
	// form trims the spaces around a field before it checks.)
	MalformedAddresses = map[string]string{
		"a space inside":                       "secu rity@corp.example",
		"a leading space":                      " security@corp.example",
		"a trailing space":                     "security@corp.example ",
		"a trailing tab":                       "security@corp.example\t",
		"a NUL":                                "security@corp.example\x00",
		"a DEL":                                "security\x7f@corp.example",
		"no at sign":                           "security",
		"two at signs":                         "security@corp@example",
		"a second at sign before another host": "security@corp.example@evil.example",
		"an empty local part":                  "@corp.example",
		"an empty domain":                      "security@",
		"a lone at sign":                       "@",
	}
)
