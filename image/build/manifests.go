package build

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/tree"
	basaltmanifests "github.com/basaltos/basalt/manifests"
	"go.yaml.in/yaml/v3"
)

// manifestFile is one file for k3s' auto-deploy directory.
type manifestFile struct {
	name string // in contract.K3sRootManifests
	data []byte
}

// manifestExts are the files k3s' deploy controller applies.
var manifestExts = []string{".yaml", ".yml", ".json"}

// manifests reads the spec's manifests: (files, directories, globs), checks
// each document names apiVersion and kind, and inlines local Helm charts:
// a HelmChart whose spec.chart names a .tgz next to the manifest gets it as
// spec.chartContent (base64), which k3s' helm controller installs without
// network.
func manifests(s *spec.Spec) ([]manifestFile, []Input, error) {
	var out []manifestFile
	var list []Input
	from := map[string]string{} // name -> host file
	for i, m := range s.Manifests {
		where := s.Where(fmt.Sprintf(".manifests[%d].path", i))
		files, err := manifestPaths(s.Resolve(m.Path))
		if err != nil {
			return nil, nil, invalidf("%s: %v", where, err)
		}
		for _, f := range files {
			name := filepath.Base(f)
			if prev, ok := from[name]; ok && prev != f {
				return nil, nil, invalidf("%s: %s and %s both give %s in k3s' manifests directory (names must be unique)", where, prev, f, name)
			}
			from[name] = f
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, nil, invalidf("%s: %v", where, err)
			}
			var charts []string
			if data, charts, err = inlineCharts(f, data); err != nil {
				return nil, nil, invalidf("%s: %v", where, err)
			}
			for _, c := range charts {
				sum, err := fileSHA(c)
				if err != nil {
					return nil, nil, err
				}
				list = append(list, Input{Name: filepath.Base(c), Kind: "chart", Source: c, SHA256: sum})
			}
			sum, err := fileSHA(f)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, manifestFile{name: name, data: data})
			list = append(list, Input{Name: name, Kind: "manifest", Source: f, SHA256: sum})
		}
	}
	defaults, err := defaultManifests()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range defaults {
		if _, ok := from[m.name]; !ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, list, nil
}

// defaultManifests are basalt's own (the top-level manifests/ folder,
// embedded), checked like the spec's.
func defaultManifests() ([]manifestFile, error) {
	ents, err := fs.ReadDir(basaltmanifests.Default, ".")
	if err != nil {
		return nil, err
	}
	var out []manifestFile
	for _, e := range ents {
		data, err := fs.ReadFile(basaltmanifests.Default, e.Name())
		if err != nil {
			return nil, err
		}
		if _, charts, err := inlineCharts("manifests/"+e.Name(), data); err != nil || len(charts) > 0 {
			return nil, fmt.Errorf("basalt's default manifest: %v (charts %v)", err, charts)
		}
		out = append(out, manifestFile{name: e.Name(), data: data})
	}
	return out, nil
}

// manifestPaths expands a file, a directory (its manifest files, not
// recursive, sorted) or a glob.
func manifestPaths(p string) ([]string, error) {
	if strings.ContainsAny(p, "*?[") {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s matches no file", p)
		}
		return m, nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, errUnwrap(err))
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && hasManifestExt(e.Name()) {
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no %s file", p, strings.Join(manifestExts, ", "))
	}
	return files, nil
}

func hasManifestExt(name string) bool {
	for _, e := range manifestExts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// inlineCharts checks every YAML document of file and returns data, or its
// re-encoded documents when a HelmChart's chart was inlined, and the charts.
func inlineCharts(file string, data []byte) ([]byte, []string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	var charts []string
	for n := 1; ; n++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", file, err)
		}
		docs = append(docs, &doc)
		if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
			continue
		}
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode || field(m, "apiVersion") == nil || field(m, "kind") == nil {
			return nil, nil, fmt.Errorf("%s:%d: document %d is not a Kubernetes object (want apiVersion and kind)", file, m.Line, n)
		}
		if field(m, "kind").Value != "HelmChart" {
			continue
		}
		sp := field(m, "spec")
		chart := field(sp, "chart")
		if chart == nil || !strings.HasSuffix(chart.Value, ".tgz") || strings.Contains(chart.Value, "://") {
			continue
		}
		tgz := chart.Value
		if !filepath.IsAbs(tgz) {
			tgz = filepath.Join(filepath.Dir(file), tgz)
		}
		b, err := os.ReadFile(tgz)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: spec.chart: %v", file, chart.Line, err)
		}
		// chart stays the chart's name for k3s; chartContent wins over it.
		chart.Value = strings.TrimSuffix(filepath.Base(tgz), ".tgz")
		sp.Content = append(sp.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "chartContent"},
			&yaml.Node{Kind: yaml.ScalarNode, Value: base64.StdEncoding.EncodeToString(b)})
		charts = append(charts, tgz)
	}
	if len(charts) == 0 {
		return data, nil, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), charts, nil
}

// field returns the value of key in mapping m (nil when absent).
func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// addManifests puts the manifests into contract.K3sRootManifests.
func addManifests(t *tree.Tree, ms []manifestFile) error {
	for _, m := range ms {
		if err := t.AddBytes(strings.TrimPrefix(contract.K3sRootManifests, "/")+"/"+m.name, 0o644, m.data); err != nil {
			return err
		}
	}
	return nil
}
