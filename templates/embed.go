// Package templates holds the text/template sources of capygen's
// template-based emitters (the Tofino P4 program, gen/p4), embedded so the
// capygen binary needs no files beside it.
//
// Each template starts with a type-hint comment naming the Go type it is
// executed with. Templates hold no naming logic: every identifier comes
// from a method or a FuncMap helper defined in the emitter's Go package.
package templates

import "embed"

// FS holds every template, by file name.
//
//go:embed *.tmpl
var FS embed.FS
