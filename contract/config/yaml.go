package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML accepts a list of strings or one comma-separated string.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = StringList{}
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				*l = append(*l, f)
			}
		}
		return nil
	}
	var v []string
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = v
	return nil
}

// UnmarshalYAML accepts a mapping or a bare user name ("default" too).
func (u *User) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*u = User{}
		return n.Decode(&u.Name)
	}
	type plain User
	return n.Decode((*plain)(u))
}
