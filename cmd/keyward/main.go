// Command keyward is the Keyward server and its admin tool. main wires the
// application from configuration; there is no business logic here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `keyward: multi-tenant API key portal and gateway

Usage:
  keyward serve            start the portal and API (starts a local Postgres when no database is configured)
  keyward migrate          apply database migrations
  keyward tenant create    create a tenant
  keyward user create      create a portal user and print a one-time password
  keyward audit verify     check every tenant's audit hash chain
  keyward version          print the version

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

// run executes one subcommand; results go to stdout, messages to stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd := args[0]; {
	case cmd == "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr, log)
	case cmd == "migrate":
		err = cmdMigrate(ctx, args[1:], stdout, stderr, log)
	case cmd == "tenant" && len(args) > 1 && args[1] == "create":
		err = cmdTenantCreate(ctx, args[2:], stdout, stderr, log)
	case cmd == "user" && len(args) > 1 && args[1] == "create":
		err = cmdUserCreate(ctx, args[2:], stdin, stdout, stderr, log)
	case cmd == "audit" && len(args) > 1 && args[1] == "verify":
		err = cmdAuditVerify(ctx, args[2:], stdout, stderr, log)
	case (cmd == "tenant" || cmd == "user" || cmd == "audit") && (len(args) == 1 || args[1] == "-h" || args[1] == "--help" || args[1] == "help"):
		sub := map[string]string{"tenant": "create", "user": "create", "audit": "verify"}[cmd]
		fmt.Fprintf(stdout, "Usage: keyward %s %s [flags]\n\nRun 'keyward %s %s --help' for its flags.\n", cmd, sub, cmd, sub)
		if len(args) == 1 {
			return 2
		}
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
