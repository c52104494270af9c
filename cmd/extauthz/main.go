// Command extauthz is an Envoy external-authorization sidecar that brings
// Pomerium-style user impersonation and service accounts to any Envoy.
//
//	extauthz serve [--config FILE]        run the ext_authz server and the /.pomerium pages
//	extauthz service-account [flags] [S]  mint a service-account token (also: invoked as pomerium-cli)
//	extauthz check [flags]                send one CheckRequest and print the answer
//	extauthz explain --config FILE ...    what an identity could reach, without a token
//	extauthz validate --config FILE       check a config, print every problem
//	extauthz revoke --config FILE --sid|--jti|--email X   revoke in the shared store
//	extauthz healthcheck [--config FILE]  exit 0 when a running sidecar is SERVING
//	extauthz version                      the version this binary was built as
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Exit codes (contract section 1).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in how the command was called: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// env is the process environment a command sees, so tests can run commands in-process.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// asPomeriumCLI reports whether the binary was invoked under the original
// pomerium-cli's name, which runs service-account with its usage line.
func (e *env) asPomeriumCLI() bool {
	return strings.TrimSuffix(filepath.Base(e.args[0]), ".exe") == "pomerium-cli"
}

func main() {
	e := &env{args: os.Args, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(e))
}

var commands = map[string]func(*env, []string) error{
	"serve":           serve,
	"service-account": serviceAccount,
	"check":           checkCommand,
	"explain":         explain,
	"validate":        validate,
	"revoke":          revoke,
	"healthcheck":     healthcheck,
	"version":         versionCommand,
}

func run(e *env) int {
	name := filepath.Base(e.args[0])
	var err error
	switch {
	case e.asPomeriumCLI():
		err = serviceAccount(e, e.args[1:])
	case len(e.args) < 2:
		printUsage(e.stderr)
		return exitUsage
	default:
		cmd, ok := commands[e.args[1]]
		if !ok {
			if e.args[1] == "--version" || e.args[1] == "-version" {
				return exitCode(e, name, versionCommand(e, nil))
			}
			if e.args[1] == "-h" || e.args[1] == "--help" || e.args[1] == "help" {
				printUsage(e.stdout)
				return exitOK
			}
			fmt.Fprintf(e.stderr, "extauthz: unknown command %q; run \"extauthz help\" for the list.\n", e.args[1])
			return exitUsage
		}
		err = cmd(e, e.args[2:])
	}
	return exitCode(e, name, err)
}

// exitCode prints err as the contract wants it and returns the exit code.
func exitCode(e *env, name string, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "%s: %s\n", name, ue.msg)
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailure
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", name, ee.err)
		}
		return ee.code
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
		return exitFailure
	}
}

// exitError ends a command with a code of its own (check: 1 denied, 3 not
// asked), printing err when there is one.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// errReported means the command already printed what went wrong.
var errReported = errors.New("reported")

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: extauthz <command> [flags]

Commands:
  serve            run the ext_authz gRPC server and the /.pomerium pages
                   (no --config: an embedded demo with printed tokens)
  service-account  mint a route-scoped service-account token (as pomerium-cli)
  check            send one CheckRequest to a running server and print the answer
  explain          show what an identity could reach, without a token
  validate         check a config file and print every problem
  revoke           revoke a session (--sid), a token (--jti) or a user (--email)
                   in the shared store, on every replica within a second
  healthcheck      ask a running sidecar's health service (exit 0 when serving)
  version          print the version this binary was built as

Run "extauthz <command> -h" for a command's flags.
`)
}

// newFlagSet returns a flag set that reports errors instead of exiting, with
// usage printed to stderr.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags turns flag package errors into one-sentence usage errors. The
// flag set's usage text is printed only for -h/--help, never beside an error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag %s; run with -h for the list.", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("flag %s needs a value.", name)
	}
	return usagef("%s.", strings.TrimSuffix(msg, "."))
}

// parseOnlyFlags parses args for a command that takes flags and no
// positional arguments, refusing any.
func parseOnlyFlags(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: %s takes only flags, and they go before any argument.", fs.Arg(0), fs.Name())
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// durationFlag is a time.Duration flag whose parse error says what is wanted
// (the flag package's own says only "parse error").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		// People write days; Go durations stop at hours.
		if n, ok := strings.CutSuffix(v, "d"); ok {
			if days, err := strconv.Atoi(n); err == nil && days > 0 {
				return fmt.Errorf("durations have no days: write %dh for %s", days*24, v)
			}
		}
		return errors.New("want a duration such as 1h or 30m")
	}
	*f.d = d
	return nil
}
