// Command keyward is the Keyward server and its admin tool. main wires the
// application from configuration; there is no business logic here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `keyward: multi-tenant API key portal and gateway

Usage:
  keyward serve                 start the portal and API (starts a local Postgres when no database is configured)
  keyward migrate               apply database migrations
  keyward tenant create         create a tenant
  keyward user create           create a portal user and print a one-time password
  keyward user reset-password   give a user a new one-time password and end their sessions
  keyward user disable          disable a user and end their sessions
  keyward user enable           let a disabled user sign in again
  keyward user reset-mfa        remove a user's authenticator; their next sign-in enrols a new one
  keyward audit verify          check every audit chain, and checkpoints kept outside
  keyward audit public-key      print the key that verifies audit checkpoints
  keyward version               print the version

Run 'keyward COMMAND --help' for a command's flags. Configuration comes from
KEYWARD_* environment variables; flags override them.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// groups are the commands that take a subcommand, with their synopses.
var groups = map[string][][2]string{
	"tenant": {{"create", "create a tenant"}},
	"user": {
		{"create", "create a portal user and print a one-time password"},
		{"reset-password", "give a user a new one-time password and end their sessions"},
		{"disable", memberCommands["disable"].synopsis},
		{"enable", memberCommands["enable"].synopsis},
		{"reset-mfa", memberCommands["reset-mfa"].synopsis},
	},
	"audit": {
		{"verify", "check every audit chain, and checkpoints kept outside"},
		{"public-key", "print the key that verifies audit checkpoints"},
	},
}

// run executes one subcommand; results go to stdout, messages to stderr.
// Each subcommand makes its logger once its flags say which format.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	switch cmd := args[0]; {
	case cmd == "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case cmd == "migrate":
		err = cmdMigrate(ctx, args[1:], stdout, stderr)
	case cmd == "tenant" && sub == "create":
		err = cmdTenantCreate(ctx, args[2:], stdout, stderr)
	case cmd == "user" && sub == "create":
		err = cmdUserCreate(ctx, args[2:], stdin, stdout, stderr)
	case cmd == "user" && sub == "reset-password":
		err = cmdUserResetPassword(ctx, args[2:], stdout, stderr)
	case cmd == "user" && (sub == "disable" || sub == "enable" || sub == "reset-mfa"):
		err = cmdUserMember(ctx, sub, args[2:], stderr)
	case cmd == "audit" && sub == "verify":
		err = cmdAuditVerify(ctx, args[2:], stdin, stdout, stderr)
	case cmd == "audit" && sub == "public-key":
		err = cmdAuditPublicKey(args[2:], stdout, stderr)
	case groups[cmd] != nil && (sub == "-h" || sub == "--help" || sub == "help"):
		groupUsage(stdout, cmd)
	case groups[cmd] != nil:
		if sub != "" {
			fmt.Fprintf(stderr, "keyward: unknown command %q\n\n", cmd+" "+sub)
		}
		groupUsage(stderr, cmd)
		return 2
	case cmd == "version":
		if len(args) > 1 {
			fmt.Fprintln(stdout, "Usage: keyward version\n\nPrints the version of this binary.")
			return 0
		}
		fmt.Fprintln(stdout, "keyward", version)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "keyward: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errFailed):
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "keyward:", err)
		return 1
	}
	return 0
}

func groupUsage(w io.Writer, cmd string) {
	fmt.Fprintf(w, "Usage: keyward %s COMMAND [flags]\n\nCommands:\n", cmd)
	for _, c := range groups[cmd] {
		fmt.Fprintf(w, "  %-16s %s\n", c[0], c[1])
	}
	fmt.Fprintf(w, "\nRun 'keyward %s COMMAND --help' for a command's flags.\n", cmd)
}

var (
	// errUsage: the flag package already printed what was wrong.
	errUsage = errors.New("usage")
	// errFailed: the command already said why it failed.
	errFailed = errors.New("failed")
)

// parse parses a subcommand's flags, printing its usage to stderr.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, synopsis string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
