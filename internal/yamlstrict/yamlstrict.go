// Package yamlstrict reads YAML files strictly and explains every problem
// at once. It walks gopkg.in/yaml.v3 nodes instead of decoding into
// structs, so each problem carries the line and column of the offending
// key or value and is worded in the file's terms, not in Go types:
//
//	topology.yaml:4:26: hosts[1].role: "router" is not a role; use client, server or switch
//
// that is, "file:line:col: path: problem; what to change". A Decoder
// collects the problems; Object checks a mapping's keys against the
// allowed set (unknown, duplicate and aliased keys are refused) and reads
// typed values from it. The caller's loader keeps only its schema: which
// keys there are, which are required, and what their values mean.
//
// A typical loader:
//
//	d := &yamlstrict.Decoder{File: name, Kind: "topology", Start: "start it with version: 1, then hosts"}
//	if root := d.Document(data); root != nil {
//		o := d.Object(root, "", "", "version", "hosts")
//		o.Require("version", "add version: 1 as the first line")
//		if v, n := o.Int("version", "version: 1"); n != nil && v != 1 {
//			d.Errorf(n, "version", "%d is not supported; set version: 1", v)
//		}
//	}
//	return d.Err(ErrMyFormat) // nil, or an *ErrorList that unwraps to ErrMyFormat
//
// Every getter treats "key:" with nothing after it as an absent key, and
// returns the value's node (nil when absent or reported), which is the
// node to blame in the caller's own checks.
package yamlstrict

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a file; lines and columns count from 1.
type Pos struct {
	File string
	Line int
	Col  int
}

// String renders the position as file:line:col.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Diagnostic is one problem (or a warning) at a position.
type Diagnostic struct {
	Pos Pos
	Msg string
}

// String renders the diagnostic as file:line:col: message.
func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }

// Sort orders diagnostics by file, line, column, then message, so the
// output is the same whatever order the checks ran in.
func Sort(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(strings.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col), strings.Compare(a.Msg, b.Msg))
	})
}

// ErrorList is every problem found in a file, sorted by position.
type ErrorList struct {
	Errors []Diagnostic
	// Err is the sentinel every problem is an instance of, such as
	// spec.ErrInvalid: Unwrap returns it, so errors.Is tells a bad file
	// from an I/O error.
	Err error
}

// Error prints one diagnostic per line.
func (l *ErrorList) Error() string {
	if len(l.Errors) == 0 && l.Err != nil {
		return l.Err.Error()
	}
	lines := make([]string, len(l.Errors))
	for i, d := range l.Errors {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the sentinel the list was made with.
func (l *ErrorList) Unwrap() error { return l.Err }

// Decoder collects the diagnostics of one file, so one run reports every
// problem at once. The zero value (with File set) is ready to use.
type Decoder struct {
	// File names the file in every diagnostic.
	File string
	// Kind names what the file holds, such as "topology", for messages
	// about the file as a whole ("a topology file holds one document").
	Kind string
	// Start says how a file of this kind begins, for an empty file or one
	// whose top is not a mapping, e.g. "start it with version: 1, then
	// hosts and links".
	Start string
	// Diagnostics are the problems found so far, in the order found. A
	// loader may append its own, such as those of a file it includes.
	Diagnostics []Diagnostic
}

// Pos is n's position in the file. A node made by hand, without one, is
// placed at 1:1.
func (d *Decoder) Pos(n *yaml.Node) Pos {
	return Pos{File: d.File, Line: max(n.Line, 1), Col: max(n.Column, 1)}
}

// Errorf records a problem at n. path names the key or value in dotted
// form (hosts[1].role); an empty path means the file as a whole, and the
// message then stands alone.
func (d *Decoder) Errorf(n *yaml.Node, path, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: d.Pos(n), Msg: msg})
}

// kind is "a <Kind> file", or "the file" without a Kind.
func (d *Decoder) kind() string {
	if d.Kind == "" {
		return "the file"
	}
	return "a " + d.Kind + " file"
}

// at records a problem at a line, for what has no node.
func (d *Decoder) at(line int, msg string) {
	d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: Pos{File: d.File, Line: max(line, 1), Col: 1}, Msg: msg})
}

// Err returns nil when nothing was reported, else an *ErrorList of every
// diagnostic sorted by position that unwraps to sentinel.
func (d *Decoder) Err(sentinel error) error {
	if len(d.Diagnostics) == 0 {
		return nil
	}
	Sort(d.Diagnostics)
	return &ErrorList{Errors: d.Diagnostics, Err: sentinel}
}

// syntaxLine pulls the line out of yaml.v3's syntax errors
// ("yaml: line 3: ...").
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the problems yaml.v3's parser (parserc.go) reports,
// as opposed to its scanner. Its parser.fail numbers their lines from 0
// (it adds 1 only for scanner errors), so syntax adds the 1. Matched
// whole: several scanner problems also start "did not find expected".
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// syntax records a YAML syntax error in data. yaml.v3 gives only a line,
// so the column is 1.
func (d *Decoder) syntax(err error, data []byte) {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	// A problem found at the end of the stream (an unclosed bracket at
	// the end of the file) is marked past the last line.
	last := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		last++
	}
	d.at(min(line, max(last, 1)), "yaml: "+msg+"; fix the YAML syntax")
}

// Document parses data and returns its top mapping. It returns nil, with
// the reason recorded, when the YAML does not parse, holds nothing, or
// holds something other than a mapping. A second document ("---") is
// reported, since yaml.v3 would silently ignore it.
func (d *Decoder) Document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return d.Root(nil)
	} else if err != nil {
		d.syntax(err, data)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.Errorf(&next, "", "a second YAML document starts here; %s holds one, so remove it", d.kind())
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err, data)
	}
	return d.Root(&doc)
}

// Root returns the top mapping of an already decoded document: doc is a
// document node, or the top node itself. It returns nil, with the reason
// recorded, when there is no mapping.
func (d *Decoder) Root(doc *yaml.Node) *yaml.Node {
	root := doc
	if doc == nil || doc.Kind == 0 || doc.Kind == yaml.DocumentNode {
		if doc == nil || len(doc.Content) == 0 {
			d.at(1, "the file is empty; "+d.Start)
			return nil
		}
		root = doc.Content[0]
	}
	switch {
	case IsNull(root):
		d.Errorf(doc, "", "the document is empty; %s", d.Start)
	case root.Kind != yaml.MappingNode:
		d.Errorf(root, "", "the file holds %s, not a mapping; %s", Describe(root), d.Start)
	default:
		return root
	}
	return nil
}

// IsNull reports whether n is the null scalar: "key:" with nothing after
// it, "~" or "null".
func IsNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// Describe names what a node is, for "want X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// Join is the dotted path of key inside path ("" is the top).
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index is the path of a list's i-th item: hosts[1].
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// hint turns a fix into a message's "; what to change" tail, or "".
func hint(fix string) string {
	if fix == "" {
		return ""
	}
	return "; " + fix
}

// example turns an example into a "; write it like ..." tail, or "".
func example(ex string) string {
	if ex == "" {
		return ""
	}
	return "; write it like " + ex
}

const aliasMsg = "YAML aliases are not supported; write the value out"

// Object is a YAML mapping whose keys were checked against an allowed
// set. Its getters read one key each.
type Object struct {
	d    *Decoder
	node *yaml.Node
	path string
	// bad is set when the node was not a mapping; lookups then find
	// nothing and report nothing more, so one mistake gives one message.
	bad  bool
	keys map[string]*yaml.Node
	vals map[string]*yaml.Node
}

// Object checks that n is a mapping with only allowed keys, each once,
// and reports every other key. path names n in messages; fix says how to
// write it when it is something else than a mapping ("" lists the
// allowed keys).
func (d *Decoder) Object(n *yaml.Node, path, fix string, allowed ...string) *Object {
	o := &Object{d: d, node: n, path: path, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	keys := strings.Join(allowed, ", ")
	switch {
	case n.Kind == yaml.AliasNode:
		d.Errorf(n, path, aliasMsg)
		o.bad = true
		return o
	case n.Kind != yaml.MappingNode:
		if fix == "" {
			fix = "write it as key: value pairs with keys among " + keys
		}
		d.Errorf(n, path, "want a mapping, got %s; %s", Describe(n), fix)
		o.bad = true
		return o
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Errorf(k, path, "want a plain key, got %s; use one of %s", Describe(k), keys)
			continue
		}
		key := k.Value
		if prev, dup := o.keys[key]; dup {
			d.Errorf(k, o.Sub(key), "duplicate key (first at line %d); remove one", prev.Line)
			continue
		}
		if !slices.Contains(allowed, key) {
			d.Errorf(k, o.Sub(key), "unknown key; allowed keys are %s", keys)
			continue
		}
		o.keys[key], o.vals[key] = k, v
	}
	return o
}

// Node is the mapping's node (or what stood in its place).
func (o *Object) Node() *yaml.Node { return o.node }

// Path is the mapping's dotted path.
func (o *Object) Path() string { return o.path }

// Bad reports whether the node was not a mapping (which was reported);
// its getters then find nothing.
func (o *Object) Bad() bool { return o.bad }

// Sub is the dotted path of key inside the mapping.
func (o *Object) Sub(key string) string { return Join(o.path, key) }

// Key is key's own node (for problems with the key rather than its
// value), or nil when the key is not there.
func (o *Object) Key(key string) *yaml.Node { return o.keys[key] }

// Raw is key's value as written, null and aliases included, or nil when
// the key is not there.
func (o *Object) Raw(key string) *yaml.Node { return o.vals[key] }

// At is the node to blame for key: its value, else the mapping itself.
func (o *Object) At(key string) *yaml.Node {
	if v := o.vals[key]; v != nil {
		return v
	}
	return o.node
}

// Has reports whether key has a value: "key:" with nothing after it
// means the same as leaving the key out.
func (o *Object) Has(key string) bool {
	v := o.vals[key]
	return v != nil && !IsNull(v)
}

// Require reports key unless it has a value; fix says what to add
// (default "add it", or "set it" for a key written without a value). A
// value of the wrong type is reported by the getter that reads it.
func (o *Object) Require(key, fix string) {
	switch v := o.vals[key]; {
	case o.bad || o.Has(key):
	case v != nil:
		o.d.Errorf(v, o.Sub(key), "has no value; %s", cmp.Or(fix, "set it"))
	case o.path == "":
		o.d.Errorf(o.node, key, "missing; %s", cmp.Or(fix, "add it"))
	default:
		o.d.Errorf(o.node, o.path, "missing key %s; %s", key, cmp.Or(fix, "add it"))
	}
}

// Value returns key's value, or nil when it is absent or an alias (which
// is reported).
func (o *Object) Value(key string) *yaml.Node {
	if !o.Has(key) {
		return nil
	}
	v := o.vals[key]
	if v.Kind == yaml.AliasNode {
		o.d.Errorf(v, o.Sub(key), aliasMsg)
		return nil
	}
	return v
}

// scalar returns key's value when it is a scalar with tag; another kind
// of value is reported as not being want, with ex as how to write it.
func (o *Object) scalar(key, tag, want, ex string) *yaml.Node {
	v := o.Value(key)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != tag {
		o.d.Errorf(v, o.Sub(key), "want %s, got %s%s", want, Describe(v), example(ex))
		return nil
	}
	return v
}

// Str reads a string. ex, when not "", shows the key written right
// ("name: client") in the message for a value of another type. The node
// is nil when the key is absent or its value was reported.
func (o *Object) Str(key, ex string) (string, *yaml.Node) {
	v := o.scalar(key, "!!str", "a string", ex)
	if v == nil {
		return "", nil
	}
	return v.Value, v
}

// Int reads a signed integer of at most 64 bits, decimal or 0x hex; ex as
// for Str. Other forms YAML reads as integers (01500, 0o17, 0b101, 1_500)
// are reported rather than read in a base the writer did not mean.
func (o *Object) Int(key, ex string) (int64, *yaml.Node) {
	fix := "use a smaller value"
	if ex != "" {
		fix = "write it like " + ex
	}
	return decode[int64](o, key, "!!int", "an integer", "an integer of at most 64 bits", ex, fix)
}

// Uint reads a non-negative integer of at most 64 bits, decimal or 0x
// hex; ex as for Str.
func (o *Object) Uint(key, ex string) (uint64, *yaml.Node) {
	return decode[uint64](o, key, "!!int", "a non-negative integer", "a non-negative integer of at most 64 bits", ex, "use 0 up to 0xffffffffffffffff")
}

// Bool reads true or false; ex as for Str.
func (o *Object) Bool(key, ex string) (bool, *yaml.Node) {
	return decode[bool](o, key, "!!bool", "true or false", "true or false", ex, "write it like "+cmp.Or(ex, "true"))
}

// intLiteral is how Int and Uint take integers: decimal without leading
// zeros, or hex. yaml.v3 also reads 0o, 0b, '_' separators and, from
// YAML 1.1, a leading 0 as octal: mtu: 01500 would silently be 832.
var intLiteral = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*|0[xX][0-9a-fA-F]+)$`)

// intMisread says how YAML reads an integer intLiteral refuses.
func intMisread(s string) string {
	s = strings.TrimLeft(s, "+-")
	switch {
	case strings.Contains(s, "_"):
		return "no _ separators"
	case strings.HasPrefix(s, "0b") || strings.HasPrefix(s, "0B"):
		return "YAML reads 0b as binary"
	case strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0O"):
		return "YAML reads 0o as octal"
	}
	return "YAML reads a leading 0 as octal"
}

// decode reads key's scalar, which must have tag, into a T. A scalar of
// another tag is reported as not being want; one that does not fit a T
// (0xffffffffffffffff for an int64) as not being fits, with fix.
func decode[T any](o *Object, key, tag, want, fits, ex, fix string) (T, *yaml.Node) {
	var x T
	v := o.scalar(key, tag, want, ex)
	if v == nil {
		return x, nil
	}
	if tag == "!!int" && !intLiteral.MatchString(v.Value) {
		like := ""
		if ex != "" {
			like = ", like " + ex
		}
		o.d.Errorf(v, o.Sub(key), "%s is not a decimal or 0x hex integer (%s); write it in decimal or 0x hex%s", v.Value, intMisread(v.Value), like)
		return x, nil
	}
	if err := v.Decode(&x); err != nil {
		o.d.Errorf(v, o.Sub(key), "%s is not %s; %s", v.Value, fits, fix)
		return x, nil
	}
	return x, v
}

// Duration reads a Go duration string such as 5ms; ex as for Str.
func (o *Object) Duration(key, ex string) (time.Duration, *yaml.Node) {
	s, v := o.Str(key, ex)
	if v == nil {
		return 0, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		o.d.Errorf(v, o.Sub(key), "%q is not a duration; write it like %s", s, cmp.Or(ex, "5ms or 1s"))
		return 0, nil
	}
	return dur, v
}

// List reads a sequence and returns its items; fix says how to write it
// when it is something else. The node is nil when the key is absent or
// its value was reported.
func (o *Object) List(key, fix string) ([]*yaml.Node, *yaml.Node) {
	v := o.Value(key)
	if v == nil {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		o.d.Errorf(v, o.Sub(key), "want a list, got %s%s", Describe(v), hint(fix))
		return nil, nil
	}
	return v.Content, v
}

// Strings reads a list of strings, with the node of each; items of
// another type are reported and left out. fix is as for List.
func (o *Object) Strings(key, fix string) ([]string, []*yaml.Node) {
	items, _ := o.List(key, fix)
	var out []string
	var nodes []*yaml.Node
	for i, v := range items {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			o.d.Errorf(v, Index(o.Sub(key), i), "want a string, got %s%s", Describe(v), hint(fix))
			continue
		}
		out = append(out, v.Value)
		nodes = append(nodes, v)
	}
	return out, nodes
}

// Object reads a nested mapping with the allowed keys; nil when absent.
// fix is as for Decoder.Object.
func (o *Object) Object(key, fix string, allowed ...string) *Object {
	v := o.Value(key)
	if v == nil {
		return nil
	}
	return o.d.Object(v, o.Sub(key), fix, allowed...)
}
