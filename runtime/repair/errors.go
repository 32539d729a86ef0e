package repair

import (
	"errors"
	"fmt"
)

// StepError is a failure of one kernel call during a dump, a close or a
// restore. It unwraps to the errno, so errors.Is(err, unix.EADDRNOTAVAIL)
// works.
type StepError struct {
	Op   string // "dump", "close", "resume" or "restore"
	Step Step   // the timing step the call belongs to
	What string // what was being done: "TCP_REPAIR_WINDOW", "bind 10.0.0.1:80", ...
	Call string // the system call: "setsockopt", "bind", "connect", ...
	Err  error
}

func (e *StepError) Error() string {
	s := "repair: " + e.Op + ": " + e.What
	if e.Call != "" && e.Call != e.What {
		s += ": " + e.Call
	}
	return s + ": " + e.Err.Error()
}

func (e *StepError) Unwrap() error { return e.Err }

// ErrBadDump matches (with errors.Is) every FormatError.
var ErrBadDump = errors.New("repair: bad dump")

// FormatError refuses a dump encoding or a Dump value, naming the field.
type FormatError struct {
	Field   string
	Problem string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("repair: bad dump: %s: %s", e.Field, e.Problem)
}

func (e *FormatError) Is(target error) bool { return target == ErrBadDump }

func badField(field, format string, args ...any) error {
	return &FormatError{Field: field, Problem: fmt.Sprintf(format, args...)}
}
