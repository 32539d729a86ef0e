package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file walks yaml.v3 Nodes instead of decoding into structs, the way
// spec/yamlnode.go does, so every problem carries the line and column of
// the offending key or value and is worded in the file's terms rather
// than in Go types. It is a small copy rather than an import: spec's
// walker is unexported and tied to spec's diagnostics.

// diag is one problem at a position of the file.
type diag struct {
	line, col int
	msg       string
}

// parseError is every problem of one topology file, sorted by position,
// one "file:line:col: path: problem; what to change" per line.
type parseError struct {
	file  string
	diags []diag
}

func (e *parseError) Error() string {
	lines := make([]string, len(e.diags))
	for i, d := range e.diags {
		lines[i] = fmt.Sprintf("%s:%d:%d: %s", e.file, d.line, d.col, d.msg)
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets callers tell a bad topology from an I/O error with errors.Is.
func (e *parseError) Unwrap() error { return ErrTopology }

// decoder collects diagnostics, so one run reports every problem at once.
type decoder struct {
	file  string
	diags []diag
}

// errf records a problem at n; path names the key in dotted form, and an
// empty path means the problem is the file as a whole.
func (d *decoder) errf(n *yaml.Node, path, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.diags = append(d.diags, diag{line: max(n.Line, 1), col: max(n.Column, 1), msg: msg})
}

// err returns the collected problems sorted by position, or nil.
func (d *decoder) err() error {
	if len(d.diags) == 0 {
		return nil
	}
	slices.SortStableFunc(d.diags, func(a, b diag) int {
		if a.line != b.line {
			return a.line - b.line
		}
		if a.col != b.col {
			return a.col - b.col
		}
		return strings.Compare(a.msg, b.msg)
	})
	return &parseError{file: d.file, diags: d.diags}
}

// yamlLine pulls the line out of yaml.v3's syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a YAML syntax error. yaml.v3 gives only a line, so the
// column is 1.
func (d *decoder) syntax(err error) {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	d.diags = append(d.diags, diag{line: max(line, 1), col: 1, msg: "yaml: " + msg + "; fix the YAML syntax"})
}

const startHint = "start it with version: 1, then hosts and links"

// document parses data into its root node; nil (with a diagnostic) when
// the YAML does not parse or holds nothing.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		d.diags = append(d.diags, diag{line: 1, col: 1, msg: "the file is empty; " + startHint})
		return nil
	} else if err != nil {
		d.syntax(err)
		return nil
	}
	// yaml.v3 would silently ignore everything after a second "---".
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errf(&next, "", "a second YAML document starts here; a topology file holds one, so remove it")
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err)
	}
	root := doc.Content[0]
	if isNull(root) {
		d.errf(&doc, "", "the document is empty; "+startHint)
		return nil
	}
	return root
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
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
			return "nothing"
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

// obj is a YAML mapping whose keys were checked against the allowed set.
type obj struct {
	d    *decoder
	node *yaml.Node
	path string
	// bad is set when the node was not a mapping; lookups then find
	// nothing and report nothing more, so one mistake gives one message.
	bad  bool
	keys map[string]*yaml.Node
	vals map[string]*yaml.Node
}

// object checks that n is a mapping with only allowed keys, each once;
// fix says how to write it when it is something else.
func (d *decoder) object(n *yaml.Node, path, fix string, allowed ...string) *obj {
	o := &obj{d: d, node: n, path: path, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	if n.Kind == yaml.AliasNode {
		d.errf(n, path, "YAML aliases are not supported; write the value out")
		o.bad = true
		return o
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "want a mapping, got %s; %s", describe(n), fix)
		o.bad = true
		return o
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "want a plain key, got %s; use one of %s", describe(k), strings.Join(allowed, ", "))
			continue
		}
		key := k.Value
		if prev, dup := o.keys[key]; dup {
			d.errf(k, o.sub(key), "duplicate key (first at line %d); remove one", prev.Line)
			continue
		}
		if !slices.Contains(allowed, key) {
			d.errf(k, o.sub(key), "unknown key; allowed keys are %s", strings.Join(allowed, ", "))
			continue
		}
		o.keys[key], o.vals[key] = k, v
	}
	return o
}

func (o *obj) sub(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// has reports whether key has a value. "key:" with nothing after it
// reads as absent, so it means the same as leaving the key out.
func (o *obj) has(key string) bool {
	v := o.vals[key]
	return v != nil && !isNull(v)
}

// require reports key as missing unless it has a value (a value of the
// wrong type was reported when it was read); fix says what to add.
func (o *obj) require(key, fix string) {
	switch {
	case o.bad || o.has(key):
	case o.vals[key] != nil:
		o.d.errf(o.vals[key], o.sub(key), "has no value; %s", fix)
	case o.path == "":
		o.d.errf(o.node, key, "missing; %s", fix)
	default:
		o.d.errf(o.node, o.path, "missing key %s; %s", key, fix)
	}
}

// value returns key's value, or nil when it is absent or an alias (which
// is reported).
func (o *obj) value(key string) *yaml.Node {
	if !o.has(key) {
		return nil
	}
	v := o.vals[key]
	if v.Kind == yaml.AliasNode {
		o.d.errf(v, o.sub(key), "YAML aliases are not supported; write the value out")
		return nil
	}
	return v
}

// scalar returns key's value when it is a scalar with tag; another kind
// of value is reported with want and an example of the key written right.
func (o *obj) scalar(key, tag, want, example string) *yaml.Node {
	v := o.value(key)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != tag {
		o.d.errf(v, o.sub(key), "want %s, got %s; write it like %s", want, describe(v), example)
		return nil
	}
	return v
}

// str reads a string; the node is nil when absent or of the wrong type.
func (o *obj) str(key, example string) (string, *yaml.Node) {
	v := o.scalar(key, "!!str", "a string", example)
	if v == nil {
		return "", nil
	}
	return v.Value, v
}

// int reads an integer; the node is nil when absent or of the wrong type.
func (o *obj) int(key, example string) (int64, *yaml.Node) {
	v := o.scalar(key, "!!int", "an integer", example)
	if v == nil {
		return 0, nil
	}
	var x int64
	if err := v.Decode(&x); err != nil {
		// Integers beyond int64, such as 0xffffffffffffffff, get here.
		o.d.errf(v, o.sub(key), "%s is not an integer of at most 64 bits; write it like %s", v.Value, example)
		return 0, nil
	}
	return x, v
}

// bool reads true or false; the node is nil when absent or of the wrong type.
func (o *obj) bool(key, example string) (bool, *yaml.Node) {
	v := o.scalar(key, "!!bool", "true or false", example)
	if v == nil {
		return false, nil
	}
	var b bool
	if err := v.Decode(&b); err != nil {
		o.d.errf(v, o.sub(key), "%q is not true or false; write it like %s", v.Value, example)
		return false, nil
	}
	return b, v
}

// list reads a sequence; the node is nil when absent or not a list.
func (o *obj) list(key, fix string) ([]*yaml.Node, *yaml.Node) {
	v := o.value(key)
	if v == nil {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		o.d.errf(v, o.sub(key), "want a list, got %s; %s", describe(v), fix)
		return nil, nil
	}
	return v.Content, v
}

// object reads a nested mapping; nil when absent.
func (o *obj) object(key, fix string, allowed ...string) *obj {
	v := o.value(key)
	if v == nil {
		return nil
	}
	return o.d.object(v, o.sub(key), fix, allowed...)
}
