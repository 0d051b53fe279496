package auth

import "fmt"

// inputError is an ErrInvalidInput (or ErrPasswordPolicy) whose message is
// written for the person who sent the input, without a technical prefix.
type inputError struct {
	kind error
	msg  string
}

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == e.kind }

func invalid(format string, args ...any) error {
	return &inputError{kind: ErrInvalidInput, msg: fmt.Sprintf(format, args...)}
}

func policy(format string, args ...any) error {
	return &inputError{kind: ErrPasswordPolicy, msg: fmt.Sprintf(format, args...)}
}
