package flash

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract/config"
)

// Counter is the placeholder in --set values replaced by a card's number
// in a batch ("hostname=store-{n}").
const Counter = "{n}"

// DropIn returns a device-config drop-in (kind DeviceConfig) setting each
// key=value of sets; dotted keys nest ("network.hostname" is hostname
// under network), values are YAML scalars. The document is parsed back
// with the device's parser, so a wrong key fails here, on the host.
func DropIn(name string, sets []string) ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value (e.g. hostname=store-042)", s)
		}
		m := root
		keys := strings.Split(k, ".")
		for i, key := range keys {
			var next *yaml.Node
			for j := 0; j+1 < len(m.Content); j += 2 {
				if m.Content[j].Value == key {
					next = m.Content[j+1]
				}
			}
			if i == len(keys)-1 {
				if next != nil {
					return nil, fmt.Errorf("--set %q: %s is set twice", s, k)
				}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
				break
			}
			if next == nil {
				next = &yaml.Node{Kind: yaml.MappingNode}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, next)
			}
			if next.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("--set %q: %s is a value, not a section", s, strings.Join(keys[:i+1], "."))
			}
			m = next
		}
	}
	body, err := yaml.Marshal(root)
	if err != nil {
		return nil, err
	}
	doc := append([]byte("apiVersion: "+config.APIVersion+"\nkind: "+config.Kind+"\n"), body...)
	if _, _, err := config.Parse(name, doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// Batch gives each card of a batch its settings: the --set values with
// Counter replaced by first+i, then the i-th row of a CSV file whose header
// names the keys (one row per card).
type Batch struct {
	Sets  []string
	First int
	rows  [][]string
	keys  []string
}

// ReadCSV loads the per-card rows of a CSV file into b.
func (b *Batch) ReadCSV(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return fmt.Errorf("%s: want a header row of keys and one row per card", path)
	}
	b.keys, b.rows = recs[0], recs[1:]
	return nil
}

// Cards is how many cards the CSV has rows for (0: no CSV).
func (b *Batch) Cards() int { return len(b.rows) }

// Card returns the settings of card i (0-based).
func (b *Batch) Card(i int) ([]string, error) {
	var out []string
	for _, s := range b.Sets {
		out = append(out, strings.ReplaceAll(s, Counter, strconv.Itoa(b.First+i)))
	}
	if b.rows != nil {
		if i >= len(b.rows) {
			return nil, fmt.Errorf("card %d: the CSV has rows for %d cards", i+1, len(b.rows))
		}
		for j, k := range b.keys {
			out = append(out, k+"="+b.rows[i][j])
		}
	}
	return out, nil
}
