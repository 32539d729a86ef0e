package specload

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sets collects repeated -set path=value flags (a flag.Value).
type Sets []string

// String joins the overrides; one holding a control character (a newline)
// is quoted, so that a generated header names it on one line.
func (s *Sets) String() string {
	out := make([]string, len(*s))
	for i, v := range *s {
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			v = strconv.Quote(v)
		}
		out[i] = v
	}
	return strings.Join(out, " ")
}
func (s *Sets) Set(v string) error { *s = append(*s, v); return nil }

// applySets applies each "path=value" override to the decoded spec
// document's node tree, in place. path is dotted (directory.index_bits,
// budget.sram, list items by index, one past the end to append:
// directory.levels.1.hash.poly); value is YAML, so a whole list or map can
// be given in flow style. This is how `capyrun demo` and users try another
// switch budget without copying the spec.
//
// The tree is patched, not re-serialised, so every untouched node keeps
// its line and column and diagnostics point into the real file. A value
// that replaces another takes the replaced value's position (every node of
// it), an appended list item its list's, a new key its mapping's.
func applySets(root *yaml.Node, sets []string) error {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return fmt.Errorf("-set: the spec is empty")
	}
	for _, s := range sets {
		path, value, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return fmt.Errorf("-set %q: want path=value, e.g. -set directory.index_bits=14", s)
		}
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return fmt.Errorf("-set %s: value %q is not YAML: %v", path, value, err)
		}
		if len(v.Content) == 0 {
			return fmt.Errorf("-set %s: empty value", path)
		}
		if err := setPath(root.Content[0], strings.Split(path, "."), v.Content[0], path); err != nil {
			return err
		}
	}
	return nil
}

// moveTo gives n and everything below it the position of at: the value
// came from the command line, so the place it replaces is where to look.
func moveTo(n, at *yaml.Node) {
	n.Line, n.Column = at.Line, at.Column
	for _, c := range n.Content {
		moveTo(c, at)
	}
}

func setPath(n *yaml.Node, keys []string, v *yaml.Node, full string) error {
	k := keys[0]
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				if len(keys) == 1 {
					moveTo(v, n.Content[i+1])
					n.Content[i+1] = v
					return nil
				}
				return setPath(n.Content[i+1], keys[1:], v, full)
			}
		}
		if len(keys) == 1 { // a new key; the loader still refuses unknown ones
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}
			moveTo(key, n)
			moveTo(v, n)
			n.Content = append(n.Content, key, v)
			return nil
		}
		return fmt.Errorf("-set %s: the spec has no %q here", full, k)
	case yaml.SequenceNode:
		i, err := strconv.Atoi(k)
		if err == nil && i == len(n.Content) && len(keys) == 1 { // one past the end appends
			moveTo(v, n)
			n.Content = append(n.Content, v)
			return nil
		}
		if err != nil || i < 0 || i >= len(n.Content) {
			return fmt.Errorf("-set %s: %q is not an index of a %d-item list", full, k, len(n.Content))
		}
		if len(keys) == 1 {
			moveTo(v, n.Content[i])
			n.Content[i] = v
			return nil
		}
		return setPath(n.Content[i], keys[1:], v, full)
	default:
		return fmt.Errorf("-set %s: %q is inside a scalar", full, k)
	}
}
