package spec

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract/config"
)

// DeviceConfig is the spec's config: section: the body of a device-config
// document (contract/config: hostname, users, ntp, network, cluster,
// update, registries, ...), checked by contract/config's own parser and
// validator and baked into the root as a kind: DeviceConfig document.
type DeviceConfig struct {
	// Config is the parsed section, set when the spec is valid.
	Config config.Config
	node   *yaml.Node
}

// UnmarshalYAML keeps the node; parseConfig checks it against the raw
// spec text so that messages carry the spec's lines.
func (d *DeviceConfig) UnmarshalYAML(n *yaml.Node) error {
	d.node = n
	return nil
}

// HasSecrets reports whether the config holds secrets (password hashes,
// join tokens, registry credentials): the baked file is then 0600.
func (d *DeviceConfig) HasSecrets() bool {
	a, _ := yaml.Marshal(&d.Config)
	b, _ := yaml.Marshal(d.Config.Redacted())
	return !bytes.Equal(a, b)
}

// Document returns the section as a versioned kind: DeviceConfig document.
func (d *DeviceConfig) Document() ([]byte, error) { return config.MarshalDocument(&d.Config) }

// configText turns the config: block of the spec text into a DeviceConfig
// document with the same line numbers: every other line is blanked, the
// block is de-indented, and apiVersion/kind go on lines after the file.
// ok is false for a flow-style block ({...} on one line), which is then
// re-encoded (lines are lost, paths are kept).
func configText(data []byte, key, val, next *yaml.Node) (text []byte, ok bool) {
	header := fmt.Sprintf("apiVersion: %s\nkind: %s\n", config.APIVersion, config.Kind)
	if val.Kind != yaml.MappingNode || val.Style&yaml.FlowStyle != 0 || val.Line == key.Line || len(val.Content) == 0 {
		str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
		doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("apiVersion"), str(config.APIVersion), str("kind"), str(config.Kind)}}
		if val.Kind == yaml.MappingNode {
			doc.Content = append(doc.Content, val.Content...)
		}
		text, err := yaml.Marshal(doc)
		if err != nil {
			return []byte(header), false
		}
		return text, false
	}
	lines := strings.Split(string(data), "\n")
	first, last := val.Line, len(lines) // 1-based, inclusive
	if next != nil {
		last = next.Line - 1
	}
	indent := val.Column - 1
	var b strings.Builder
	for i, l := range lines {
		n := i + 1
		// Lines of the block indented less than its keys are blank or
		// comments in valid YAML: they are blanked like the rest.
		if n >= first && n <= last && len(l)-len(strings.TrimLeft(l, " ")) >= indent {
			b.WriteString(l[indent:])
		}
		b.WriteString("\n")
	}
	b.WriteString(header)
	return []byte(b.String()), true
}

// parseConfig parses and validates the config: section with
// contract/config and converts its issues to spec issues under .config.
func (s *Spec) parseConfig(data []byte, root *yaml.Node) (errs, warns []Issue) {
	if s.Config == nil || s.Config.node == nil || root == nil || root.Kind != yaml.MappingNode {
		return nil, nil
	}
	var key, val, next *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if key != nil && next == nil {
			next = root.Content[i]
		}
		if root.Content[i].Value == "config" {
			key, val = root.Content[i], root.Content[i+1]
		}
	}
	if key == nil {
		return nil, nil
	}
	text, exact := configText(data, key, val, next)
	doc, ws, err := config.Parse(s.File, text)
	conv := func(is config.Issue) Issue {
		msg := is.Reason
		if len(is.Allowed) > 0 {
			msg += " (allowed: " + strings.Join(is.Allowed, ", ") + ")"
		}
		p := ".config" + is.Path
		line := is.Line
		if !exact || line > len(bytes.Split(data, []byte("\n"))) {
			line = s.Line(p)
		}
		return Issue{File: s.File, Line: line, Path: p, Msg: msg}
	}
	for _, w := range ws {
		warns = append(warns, conv(w))
	}
	if err != nil {
		if is, ok := err.(config.Issues); ok {
			for _, i := range is {
				errs = append(errs, conv(i))
			}
		} else {
			errs = append(errs, Issue{File: s.File, Line: key.Line, Path: ".config", Msg: err.Error()})
		}
		return errs, warns
	}
	s.Config.Config = doc.Config
	return nil, warns
}
