package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
)

// The member commands for the locked-out case: what an owner does on the
// team page, for when no owner can sign in.
var memberCommands = map[string]struct {
	synopsis, help string
	change         func(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID, userID int64, by audit.Actor, now time.Time) (db.User, error)
	done           string
}{
	"disable": {
		synopsis: "disable a user and end their sessions",
		help:     "Disables the user: their sessions end at once and they cannot sign in until enabled.\nThe organisation's last active owner cannot be disabled.",
		change: func(ctx context.Context, q *db.Queries, keys *audit.Keys, tid, uid int64, by audit.Actor, now time.Time) (db.User, error) {
			return auth.SetDisabled(ctx, q, keys, tid, uid, true, by, now)
		},
		done: "disabled; their sessions are ended",
	},
	"enable": {
		synopsis: "let a disabled user sign in again",
		help:     "Enables a disabled user: they can sign in again.",
		change: func(ctx context.Context, q *db.Queries, keys *audit.Keys, tid, uid int64, by audit.Actor, now time.Time) (db.User, error) {
			return auth.SetDisabled(ctx, q, keys, tid, uid, false, by, now)
		},
		done: "enabled",
	},
	"reset-mfa": {
		synopsis: "remove a user's authenticator; their next sign-in enrols a new one",
		help:     "Removes the user's authenticator and recovery codes and ends their sessions: their\nnext sign-in sets up a new authenticator. The password is unchanged.",
		change: func(ctx context.Context, q *db.Queries, keys *audit.Keys, tid, uid int64, by audit.Actor, now time.Time) (db.User, error) {
			return auth.ResetMFA(ctx, q, keys, tid, uid, by, now)
		},
		done: "authenticator reset; their sessions are ended and their next sign-in sets up a new one",
	},
}

// cmdUserMember runs one of memberCommands, audited as the system with the
// operator's OS user (actor id cli:<user>).
func cmdUserMember(ctx context.Context, name string, args []string, stderr io.Writer) error {
	mc := memberCommands[name]
	var cfg config
	fs := flag.NewFlagSet("user "+name, flag.ContinueOnError)
	cfg.dbFlags(fs)
	tenant := fs.String("tenant", "", "the tenant's slug (required)")
	email := fs.String("email", "", "the user's email address (required)")
	if err := parse(fs, args, stderr, "keyward user "+name+" --tenant SLUG --email E\n\n"+mc.help+
		"\nAudited as the system, with your OS user name."); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *tenant == "" || *email == "" {
		fmt.Fprintf(stderr, "keyward user %s: --tenant and --email are required\n", name)
		return errUsage
	}
	keys, store, closeDB, err := openForChange(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	var u db.User
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, member, err := auth.MemberByEmail(ctx, q, *tenant, *email)
		if err != nil {
			return err
		}
		u, err = mc.change(ctx, q, keys, t.ID, member.ID, cliActor(), time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s in tenant %s: %s\n", u.Email, *tenant, mc.done)
	return nil
}

// cliActor is the command line in the audit trail: the system, named
// with the OS user who ran it.
func cliActor() audit.Actor {
	return audit.Actor{Type: audit.ActorSystem, ID: "cli:" + osUser()}
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown"
}
