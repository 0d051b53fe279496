package auth

import (
	"fmt"

	"keyward/web/errs"
)

// Errors a handler shows as they are.
var (
	ErrBadCredentials = errs.New(errs.Unauthorized, "", "The email address or password is incorrect.")
	// ErrInvalidInput is the cause of every Invalid error of this package.
	ErrInvalidInput = errs.New(errs.Invalid, "", "invalid input")
	// ErrPasswordPolicy is the cause of a new password's refusal.
	ErrPasswordPolicy = errs.New(errs.Invalid, "", "the password does not meet the policy")
	// ErrCannotManageKeys refuses a viewer any change to keys.
	ErrCannotManageKeys = errs.New(errs.Forbidden, "",
		"Your role (viewer) can see API keys but not create or change them. Ask an owner or admin.")
	// ErrCallerChanged refuses an operation whose caller's role or status
	// changed after the request began.
	ErrCallerChanged = errs.New(errs.Forbidden, "",
		"Your role or status in this organisation changed while you were working. Reload the page: nothing was changed.")
)

// invalid is an Invalid error about field, for the person who typed it.
func invalid(field, format string, args ...any) error {
	e := errs.InvalidField(field, fmt.Sprintf(format, args...))
	e.Err = ErrInvalidInput
	return e
}

// policy is a new password's refusal.
func policy(field, format string, args ...any) error {
	e := errs.InvalidField(field, fmt.Sprintf(format, args...))
	e.Err = ErrPasswordPolicy
	return e
}
