package spec

import (
	"errors"

	"github.com/capygen/capygen/internal/yamlstrict"
)

// ErrInvalid is what every spec error wraps: errors.Is(err, ErrInvalid)
// tells a bad spec apart from an I/O error.
var ErrInvalid = errors.New("invalid spec")

// Pos is a position in the spec file, for diagnostics; String renders it
// as file:line:col.
type Pos = yamlstrict.Pos

// Diagnostic is one problem (or, from Vet, one warning) at a position;
// String renders it as file:line:col: message.
type Diagnostic = yamlstrict.Diagnostic

// ErrorList is every problem found in a spec, sorted by position, one
// diagnostic per line; it unwraps to ErrInvalid.
type ErrorList = yamlstrict.ErrorList
