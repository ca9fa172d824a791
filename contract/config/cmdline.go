package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract"
)

// CmdlineFile is the Document.File of the kernel command-line source.
const CmdlineFile = "cmdline"

// CmdlineKeys maps each supported `basalt.*` kernel command-line key to the
// config key it sets. Lists are comma-separated. Network keys have the form
// basalt.net.IFACE.KEY (dhcp4, dhcp6, addresses, gateway4, gateway6,
// nameservers). Secrets (cluster.token) are refused: /proc/cmdline is
// world-readable.
var CmdlineKeys = map[string]string{
	"basalt.hostname":           "hostname",
	"basalt.fqdn":               "fqdn",
	"basalt.timezone":           "timezone",
	"basalt.ntp.enabled":        "ntp.enabled",
	"basalt.ntp.servers":        "ntp.servers",
	"basalt.ntp.pools":          "ntp.pools",
	"basalt.cluster.role":       "cluster.role",
	"basalt.cluster.server":     "cluster.server",
	"basalt.cluster.token_file": "cluster.token_file",
	"basalt.cluster.node_name":  "cluster.node_name",
	"basalt.cluster.node_ip":    "cluster.node_ip",
	"basalt.update.channel":     "update.channel",
	"basalt.update.interval":    "update.interval",
}

var netKeys = map[string]bool{"dhcp4": true, "dhcp6": true, "addresses": true, "gateway4": true, "gateway6": true, "nameservers": true}

// configPrefixes are the cmdline key prefixes owned by the device config;
// other basalt.* keys (basalt.slot, basalt.debug) belong to the init.
var configPrefixes = []string{"basalt.hostname", "basalt.fqdn", "basalt.timezone", "basalt.ntp.", "basalt.cluster.", "basalt.update.", "basalt.net."}

// HarmlessCmdline returns cmdline without the config keys that are not
// HarmlessCmdlineKeys (other words stay), and the keys it dropped.
func HarmlessCmdline(cmdline string) (string, []string) {
	var keep, refused []string
	for _, word := range contract.CmdlineFields(cmdline) {
		k, _, _ := strings.Cut(word, "=")
		if hasAnyPrefix(k, configPrefixes) && !HarmlessCmdlineKeys[k] {
			refused = append(refused, k)
			continue
		}
		keep = append(keep, `"`+word+`"`) // words have no quotes left: regroup them

	}
	return strings.Join(keep, " "), refused
}

// ParseCmdline builds a document from the basalt.* keys of a kernel command
// line (space-separated key=value words; double quotes group). Unknown keys
// under the config prefixes and refused secrets are warnings; invalid values
// are errors (Issues), as for a file.
func ParseCmdline(cmdline string) (*Document, Issues, error) {
	tree := map[string]any{}
	var warns Issues
	for _, word := range contract.CmdlineFields(cmdline) {
		k, val, _ := strings.Cut(word, "=")
		if !hasAnyPrefix(k, configPrefixes) {
			continue
		}
		target, ok := CmdlineKeys[k]
		if rest, isNet := strings.CutPrefix(k, "basalt.net."); isNet {
			iface, key, _ := strings.Cut(rest, ".")
			if iface != "" && netKeys[key] {
				ok = true
				if key == "nameservers" {
					key = "nameservers.addresses"
				}
				target = "network.interfaces." + iface + "." + key
			}
		}
		if !ok {
			reason := "unknown kernel command-line key, ignored"
			if k == "basalt.cluster.token" {
				reason = "secrets are not read from the world-readable kernel command line; use basalt.cluster.token_file"
			}
			warns = append(warns, Issue{File: CmdlineFile, Path: k, Reason: reason})
			continue
		}
		var v any = val
		if strings.HasSuffix(target, "ntp.servers") || strings.HasSuffix(target, "ntp.pools") || strings.HasSuffix(target, ".addresses") {
			v = splitList(val)
		}
		setPath(tree, target, v)
	}
	b, err := yaml.Marshal(tree)
	if err != nil {
		return nil, warns, fmt.Errorf("cmdline: %w", err)
	}
	doc, w, err := Parse(CmdlineFile, append([]byte(CloudConfigHeader+"\n"), b...))
	warns = append(warns, w...)
	if err != nil {
		// Lines of the synthetic document mean nothing to the user.
		var is Issues
		if errors.As(err, &is) {
			for i := range is {
				is[i].Line = 0
			}
		}
		return nil, warns, err
	}
	doc.Format = FormatCmdline
	doc.lines = map[string]int{}
	return doc, warns, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// setPath sets a dotted path in a nested map. Booleans and integers are
// left as strings: the YAML decoder converts them for typed fields.
func setPath(m map[string]any, p string, v any) {
	parts := strings.Split(p, ".")
	for _, k := range parts[:len(parts)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if s, ok := v.(string); ok {
		if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
			v = b
		}
	}
	m[parts[len(parts)-1]] = v
}

func hasAnyPrefix(s string, ps []string) bool {
	for _, p := range ps {
		if s == strings.TrimSuffix(p, ".") || strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// MetaData is a NoCloud meta-data document.
type MetaData struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
}

// ParseMetaData reads a NoCloud meta-data file. It returns a document
// setting hostname from local-hostname (cloud-init: user-data hostname
// wins, so merge it before the user-data) and the instance ID. Other keys
// are warnings.
func ParseMetaData(file string, data []byte) (*Document, string, Issues, error) {
	if len(data) > MaxDocumentSize {
		return nil, "", nil, Issues{{File: file, Reason: fmt.Sprintf("document is %d bytes, more than the limit of %d", len(data), MaxDocumentSize)}}
	}
	var md MetaData
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, reason := yamlError(err)
		return nil, "", nil, Issues{{File: file, Line: line, Reason: reason}}
	}
	out := &Document{File: file, Format: FormatCloudConfig, lines: map[string]int{}}
	var ws Issues
	if len(root.Content) > 0 {
		w := &walker{file: file, cloud: true, lines: out.lines, budget: maxNodes}
		w.walk(root.Content[0], reflect.TypeFor[MetaData](), "", 0)
		if len(w.errs) > 0 {
			return nil, "", w.warns, w.errs
		}
		ws = w.warns
		if err := root.Content[0].Decode(&md); err != nil {
			line, reason := yamlError(err)
			return nil, "", ws, Issues{{File: file, Line: line, Reason: reason}}
		}
	}
	if md.LocalHostname != "" {
		h, _, isFQDN := strings.Cut(md.LocalHostname, ".")
		out.Config.Hostname = &h
		out.lines[".hostname"] = out.lines[".local-hostname"]
		if isFQDN {
			f := md.LocalHostname
			out.Config.FQDN = &f
			out.lines[".fqdn"] = out.lines[".local-hostname"]
		}
	}
	if errs := Validate(out); len(errs) > 0 {
		for i := range errs {
			errs[i].Path = ".local-hostname"
		}
		return nil, "", ws, errs
	}
	return out, md.InstanceID, ws, nil
}
