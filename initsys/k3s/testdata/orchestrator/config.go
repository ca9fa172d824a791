package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// kind is a flag's k3s type.
type kind int

const (
	str kind = iota
	list
	boolean
)

// flags are the k3s flags basalt writes, by role, with k3s' types.
var flags = map[string]struct {
	kind       kind
	serverOnly bool
}{
	"server": {str, false}, "token": {str, false}, "token-file": {str, false},
	"node-name": {str, false}, "node-ip": {str, false}, "node-label": {list, false}, "node-taint": {list, false},
	"datastore-endpoint": {str, true}, "cluster-init": {boolean, true},
}

// config is the effective k3s configuration.
type config struct {
	role    string
	values  map[string]any // string, []string or bool
	sources []string
}

func (c *config) str(k string) string {
	s, _ := c.values[k].(string)
	return s
}

// loadConfig reads DIR/config.yaml, then DIR/config.yaml.d/*.yaml in
// lexical order (later wins; lists replace), then the command line.
func loadConfig(role, dir string, args []string) (*config, error) {
	c := &config{role: role, values: map[string]any{}}
	files := []string{filepath.Join(dir, "config.yaml")}
	more, _ := filepath.Glob(filepath.Join(dir, "config.yaml.d", "*.yaml"))
	sort.Strings(more)
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) && f == files[0] {
			continue
		}
		if err != nil {
			return nil, err
		}
		fi, _ := os.Stat(f)
		if m := fi.Mode().Perm(); m&0o077 != 0 && bytes.Contains(b, []byte("token")) {
			return nil, fmt.Errorf("%s holds a token but is mode %04o, want 0600", f, m)
		}
		var doc map[string]yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&doc); err != nil && err.Error() != "EOF" {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for k, n := range doc {
			v, err := value(role, k, &n)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", f, n.Line, err)
			}
			c.values[k] = v
		}
		c.sources = append(c.sources, f)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("command line: %q is not a --flag", a)
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		f, known := flags[k]
		if !known {
			return nil, fmt.Errorf("command line: unknown flag --%s (the test orchestrator knows %s)", k, knownFlags())
		}
		if !ok {
			if f.kind == boolean {
				v = "true"
			} else if i+1 < len(args) {
				i++
				v = args[i]
			} else {
				return nil, fmt.Errorf("command line: --%s needs a value", k)
			}
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Value: v}
		if f.kind == list {
			prev, _ := c.values[k].([]string)
			c.values[k] = append(prev, v)
			continue
		}
		val, err := value(role, k, n)
		if err != nil {
			return nil, fmt.Errorf("command line: %w", err)
		}
		c.values[k] = val
	}
	if c.str("token") != "" && c.str("token-file") != "" {
		return nil, fmt.Errorf("token and token-file both set")
	}
	if role == "agent" {
		if c.str("server") == "" {
			return nil, fmt.Errorf("an agent needs server")
		}
		if c.str("token") == "" && c.str("token-file") == "" {
			return nil, fmt.Errorf("an agent needs token or token-file")
		}
	}
	if c.str("server") != "" && !strings.HasPrefix(c.str("server"), "https://") {
		return nil, fmt.Errorf("server %q: want https://HOST:6443", c.str("server"))
	}
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var shown []string
	for _, k := range keys {
		v := c.values[k]
		if k == "token" {
			v = "<redacted>"
		}
		shown = append(shown, fmt.Sprintf("%s=%v", k, v))
	}
	say("config from %v: %s", c.sources, strings.Join(shown, " "))
	return c, nil
}

func knownFlags() string {
	var ks []string
	for k := range flags {
		ks = append(ks, "--"+k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// value checks one key against k3s' flags for role.
func value(role, k string, n *yaml.Node) (any, error) {
	f, ok := flags[k]
	if !ok {
		return nil, fmt.Errorf("unknown key %q (k3s flag names; the test orchestrator knows %s)", k, knownFlags())
	}
	if f.serverOnly && role != "server" {
		return nil, fmt.Errorf("%s is a server flag, not valid for k3s agent", k)
	}
	switch f.kind {
	case list:
		var l []string
		if n.Kind == yaml.ScalarNode {
			return []string{n.Value}, nil
		}
		if err := n.Decode(&l); err != nil {
			return nil, fmt.Errorf("%s: want a list of strings: %w", k, err)
		}
		return l, nil
	case boolean:
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("%s: want true or false: %w", k, err)
		}
		return b, nil
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("%s: want a string", k)
	}
	return n.Value, nil
}
