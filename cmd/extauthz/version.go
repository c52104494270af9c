package main

import (
	"fmt"

	"github.com/extauthz/extauthz/internal/buildinfo"
)

// versionCommand prints the version the binary was built as.
func versionCommand(e *env, args []string) error {
	fs := newFlagSet(e, "version")
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "extauthz %s (%s)\n", buildinfo.Version(), buildinfo.GoVersion())
	return nil
}
