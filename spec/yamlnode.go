package spec

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks yaml.Nodes and collects positioned diagnostics, so one run
// reports every problem of a file at once.
type decoder struct {
	file  string
	diags []Diagnostic
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

// errf records a problem at n; path names the key or value in dotted form.
func (d *decoder) errf(n *yaml.Node, path, format string, a ...any) {
	if path == "" {
		path = "the document"
	}
	d.diags = append(d.diags, Diagnostic{Pos: d.pos(n), Msg: path + ": " + fmt.Sprintf(format, a...)})
}

// yamlLine pulls the line out of yaml.v3's syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseDocument parses data into its root mapping. It returns nil (with a
// diagnostic recorded) when the YAML itself does not parse.
func (d *decoder) parseDocument(data []byte) *yaml.Node {
	doc := d.decodeYAML(data)
	if doc == nil {
		return nil
	}
	return d.root(doc)
}

// decodeYAML parses data into its document node, or records why not.
func (d *decoder) decodeYAML(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 1, err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		d.diags = append(d.diags, Diagnostic{Pos: Pos{File: d.file, Line: line, Col: 1}, Msg: "yaml: " + msg + "; fix the YAML syntax"})
		return nil
	}
	return &doc
}

// root returns the top node of a decoded document (or doc itself when it
// is not a document node), or records that there is none.
func (d *decoder) root(doc *yaml.Node) *yaml.Node {
	if doc != nil && doc.Kind != yaml.DocumentNode && doc.Kind != 0 {
		return doc
	}
	if doc == nil || len(doc.Content) == 0 {
		d.diags = append(d.diags, Diagnostic{Pos: Pos{File: d.file, Line: 1, Col: 1}, Msg: "the file is empty; it must be a mapping starting with version: 1"})
		return nil
	}
	return doc.Content[0]
}

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

// object checks that n is a mapping with only allowed keys, each once.
func (d *decoder) object(n *yaml.Node, path string, allowed ...string) *obj {
	o := &obj{d: d, node: n, path: path, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	if n.Kind == yaml.AliasNode {
		d.errf(n, path, "YAML aliases are not supported; write the value out")
		o.bad = true
		return o
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "want a mapping of key: value, got %s", describe(n))
		o.bad = true
		return o
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "want a plain key, got %s", describe(k))
			continue
		}
		key := k.Value
		if prev, dup := o.keys[key]; dup {
			d.errf(k, joinPath(path, key), "duplicate key (first at line %d); remove one", prev.Line)
			continue
		}
		if !contains(allowed, key) {
			d.errf(k, joinPath(path, key), "unknown key; allowed keys are %s", strings.Join(allowed, ", "))
			continue
		}
		o.keys[key], o.vals[key] = k, v
	}
	return o
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (o *obj) sub(key string) string { return joinPath(o.path, key) }

// at is the node to blame for key: its value, else the mapping itself.
func (o *obj) at(key string) *yaml.Node {
	if v := o.vals[key]; v != nil {
		return v
	}
	return o.node
}

// get returns key's value; a missing required key is reported.
func (o *obj) get(key string, required bool) *yaml.Node {
	v := o.vals[key]
	if v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		// "key:" with nothing after it reads as absent, so an empty
		// optional list or doc is fine and a required one is reported.
		if required {
			o.d.errf(v, o.sub(key), "has no value; set it")
		}
		return nil
	}
	if v == nil && required && !o.bad {
		if o.path == "" {
			o.d.errf(o.node, key, "missing; add it")
		} else {
			o.d.errf(o.node, o.path, "missing key %s; add it", key)
		}
	}
	if v != nil && v.Kind == yaml.AliasNode {
		o.d.errf(v, o.sub(key), "YAML aliases are not supported; write the value out")
		return nil
	}
	return v
}

// scalar returns v when it is a scalar of one of tags, else reports.
func (o *obj) scalar(key string, v *yaml.Node, want string, tags ...string) bool {
	if v.Kind == yaml.ScalarNode && contains(tags, v.ShortTag()) {
		return true
	}
	o.d.errf(v, o.sub(key), "want %s, got %s", want, describe(v))
	return false
}

func (o *obj) str(key string, required bool) (string, bool) {
	v := o.get(key, required)
	if v == nil || !o.scalar(key, v, "a string", "!!str") {
		return "", false
	}
	return v.Value, true
}

// name reads a key whose value must be a lower_snake name.
func (o *obj) name(key string, required bool) (string, bool) {
	s, ok := o.str(key, required)
	if !ok {
		return "", false
	}
	if p := nameProblem(s); p != "" {
		o.d.errf(o.at(key), o.sub(key), "%q %s", s, p)
		return s, false
	}
	return s, true
}

// int reads a signed integer that fits an int.
func (o *obj) int(key string, required bool) (int, bool) {
	v := o.get(key, required)
	if v == nil || !o.scalar(key, v, "an integer", "!!int") {
		return 0, false
	}
	var x int64
	if err := v.Decode(&x); err != nil || x > math.MaxInt32 || x < math.MinInt32 {
		o.d.errf(v, o.sub(key), "%s does not fit an integer of 32 bits; use a smaller value", v.Value)
		return 0, false
	}
	return int(x), true
}

// uint reads an unsigned 64-bit integer.
func (o *obj) uint(key string, required bool) (uint64, bool) {
	v := o.get(key, required)
	if v == nil || !o.scalar(key, v, "a non-negative integer", "!!int") {
		return 0, false
	}
	var x uint64
	if err := v.Decode(&x); err != nil {
		o.d.errf(v, o.sub(key), "%s is not a non-negative integer of at most 64 bits; use 0 up to 0xffffffffffffffff", v.Value)
		return 0, false
	}
	return x, true
}

func (o *obj) bool(key string) bool {
	v := o.get(key, false)
	if v == nil || !o.scalar(key, v, "true or false", "!!bool") {
		return false
	}
	var b bool
	_ = v.Decode(&b) // the tag says it is a bool
	return b
}

// duration reads a Go duration string such as 5ms.
func (o *obj) duration(key string, required bool) (time.Duration, bool) {
	s, ok := o.str(key, required)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		o.d.errf(o.at(key), o.sub(key), "%q is not a duration; write it like 5ms or 1s", s)
		return 0, false
	}
	return dur, true
}

// list reads a sequence.
func (o *obj) list(key string, required bool) []*yaml.Node {
	v := o.get(key, required)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		o.d.errf(v, o.sub(key), "want a list, got %s", describe(v))
		return nil
	}
	return v.Content
}

// strings reads a list of strings.
func (o *obj) strings(key string, required bool) ([]string, []*yaml.Node) {
	var out []string
	var nodes []*yaml.Node
	for i, v := range o.list(key, required) {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			o.d.errf(v, fmt.Sprintf("%s[%d]", o.sub(key), i), "want a string, got %s", describe(v))
			continue
		}
		out = append(out, v.Value)
		nodes = append(nodes, v)
	}
	return out, nodes
}

// object reads a nested mapping; nil when absent.
func (o *obj) object(key string, required bool, allowed ...string) *obj {
	v := o.get(key, required)
	if v == nil {
		return nil
	}
	return o.d.object(v, o.sub(key), allowed...)
}

// itemPath names a list item by its name when it has a usable one.
func itemPath(list string, i int, n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && lowerSnake.MatchString(v.Value) {
				return list + "." + v.Value
			}
		}
	}
	return fmt.Sprintf("%s[%d]", list, i)
}
