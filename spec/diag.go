package spec

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is what every spec error wraps: errors.Is(err, ErrInvalid)
// tells a bad spec apart from an I/O error.
var ErrInvalid = errors.New("invalid spec")

// String renders the position as file:line:col.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Diagnostic is one problem (or, from Vet, one warning) at a position.
type Diagnostic struct {
	Pos Pos
	Msg string
}

// String renders the diagnostic as file:line:col: message.
func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }

// ErrorList is every problem found in a spec, sorted by position.
type ErrorList struct {
	Errors []Diagnostic
}

// Error prints one diagnostic per line.
func (l *ErrorList) Error() string {
	lines := make([]string, len(l.Errors))
	for i, d := range l.Errors {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes every ErrorList match ErrInvalid.
func (l *ErrorList) Is(target error) bool { return target == ErrInvalid }

// sortDiagnostics orders by file, line, column, then message, so the output
// is deterministic whatever order the checks ran in.
func sortDiagnostics(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		return a.Msg < b.Msg
	})
}
