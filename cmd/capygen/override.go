package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// setFlags collects repeated -set path=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// applySets returns the spec document with each "path=value" override
// applied. path is dotted (directory.index_bits, budget.sram, list items by
// index, one past the end to append: directory.levels.1.hash.poly); value is YAML, so a whole list or
// map can be given in flow style. This is how `make demo` and users try
// another switch budget without copying the spec.
func applySets(doc []byte, sets []string) ([]byte, error) {
	if len(sets) == 0 {
		return doc, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil, fmt.Errorf("-set: the spec is empty")
	}
	for _, s := range sets {
		path, value, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("-set %q: want path=value, e.g. -set directory.index_bits=14", s)
		}
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return nil, fmt.Errorf("-set %s: value %q is not YAML: %v", path, value, err)
		}
		if len(v.Content) == 0 {
			return nil, fmt.Errorf("-set %s: empty value", path)
		}
		if err := setPath(root.Content[0], strings.Split(path, "."), v.Content[0], path); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func setPath(n *yaml.Node, keys []string, v *yaml.Node, full string) error {
	k := keys[0]
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				if len(keys) == 1 {
					n.Content[i+1] = v
					return nil
				}
				return setPath(n.Content[i+1], keys[1:], v, full)
			}
		}
		if len(keys) == 1 { // a new key; the loader still refuses unknown ones
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
			return nil
		}
		return fmt.Errorf("-set %s: the spec has no %q here", full, k)
	case yaml.SequenceNode:
		i, err := strconv.Atoi(k)
		if err == nil && i == len(n.Content) && len(keys) == 1 { // one past the end appends
			n.Content = append(n.Content, v)
			return nil
		}
		if err != nil || i < 0 || i >= len(n.Content) {
			return fmt.Errorf("-set %s: %q is not an index of a %d-item list", full, k, len(n.Content))
		}
		if len(keys) == 1 {
			n.Content[i] = v
			return nil
		}
		return setPath(n.Content[i], keys[1:], v, full)
	default:
		return fmt.Errorf("-set %s: %q is inside a scalar", full, k)
	}
}
