package devconfig

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/sshd"
)

// ReloadOptions say what Reload reads and what it may change.
type ReloadOptions struct {
	// Sources are read as at boot; on success the merge becomes the last
	// good config.
	Sources Sources
	// Apply says where write_files and users go.
	Apply ApplyOptions
	// SetHostname applies a changed hostname ("" means unset: the init
	// falls back to its machine-id name). Nil: hostname changes are
	// reported but not applied.
	SetHostname func(name string) error
	// SSH, when set, receives the new authorized keys (it starts or stops
	// listening as keys appear or disappear).
	SSH *sshd.Server
	// RestartOrchestrator, when set, restarts the orchestrator with the
	// new config when cluster or registries changed (else they need a
	// reboot).
	RestartOrchestrator func(next *config.Config) error
}

// rebootKeys are read once at boot (network, the updater, the zone; k3s
// unless the init can restart it);
// the other keys (hostname, fqdn, users, ssh_authorized_keys, write_files,
// ntp) are applied by Reload.
var rebootKeys = []string{"network", "cluster", "registries", "update", "timezone"}

// ReloadResult is what a reload did; it travels as JSON to
// `basalt-init config reload` (no secrets in it).
type ReloadResult struct {
	// Kept is true when a source was invalid: nothing was applied and the
	// current config stays in effect.
	Kept bool `json:"kept"`
	// Errors are invalid sources and failures to apply; Warnings as in Load.
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Refused as in Load (configTrust: signed).
	Refused []string `json:"refused,omitempty"`
	// Sources are the documents read, in merge order.
	Sources []string `json:"sources,omitempty"`
	// Changed are the top-level keys that differ from the current config.
	Changed []string `json:"changed,omitempty"`
	// Applied are the changed keys applied now.
	Applied []string `json:"applied,omitempty"`
	// NeedsReboot are the changed keys that take effect at the next boot.
	NeedsReboot []string `json:"needs_reboot,omitempty"`
	// NTPChanged says NTPServers (servers, then pools) are new; the init
	// passes them to its clock discipline.
	NTPChanged bool     `json:"ntp_changed,omitempty"`
	NTPServers []string `json:"ntp_servers,omitempty"`
	// Config is the config in effect after the reload (the current one
	// when Kept); the init keeps it for the next reload.
	Config *config.Config `json:"-"`
}

// Reload re-reads and validates the sources and applies to the running
// device what can change at run time, given the config in effect (cur).
// An invalid source keeps cur and applies nothing. write_files entries are
// written only when new or changed since cur (an append entry is not
// appended twice); users are re-applied and the SSH server gets the new
// keys. Keys that need a reboot are listed, not applied. Callers serialise
// reloads. The error is for I/O failures of the last-good file only; apply
// failures are in ReloadResult.Errors.
func Reload(ctx context.Context, cur *config.Config, o ReloadOptions) (ReloadResult, error) {
	if cur == nil {
		cur = &config.Config{}
	}
	res := ReloadResult{Config: cur}
	// Load must not fall back to the last good file here: an invalid
	// source keeps the running config, whatever the file holds.
	src := o.Sources
	lastGood := src.LastGood
	src.LastGood = ""
	r, err := Load(ctx, src)
	res.Sources = r.Sources
	for _, w := range r.Refused {
		res.Refused = append(res.Refused, w.Error())
	}
	for _, w := range r.Warnings {
		res.Warnings = append(res.Warnings, w.Error())
	}
	if err == nil && len(r.Errors) == 0 && lastGood != "" {
		err = saveLastGood(lastGood, r.Config)
	}
	if err != nil {
		return res, err
	}
	if len(r.Errors) > 0 {
		res.Kept = true
		for _, e := range r.Errors {
			res.Errors = append(res.Errors, e.Error())
		}
		return res, nil
	}
	next := r.Config
	res.Config = next
	res.Changed = changedKeys(cur, next)
	changed := func(keys ...string) bool {
		for _, k := range keys {
			if slices.Contains(res.Changed, k) {
				return true
			}
		}
		return false
	}
	applied := func(err error, keys ...string) {
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			return
		}
		for _, k := range keys {
			if changed(k) {
				res.Applied = append(res.Applied, k)
			}
		}
	}
	if changed("hostname", "fqdn") && o.SetHostname != nil {
		applied(o.SetHostname(next.EffectiveHostname()), "hostname", "fqdn")
	}
	if changed("write_files") {
		var errs []string
		for _, f := range next.WriteFiles {
			if !slices.Contains(cur.WriteFiles, f) {
				if err := writeFile(f, o.Apply); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
		if len(errs) > 0 {
			res.Errors = append(res.Errors, errs...)
		} else {
			applied(nil, "write_files")
		}
	}
	if changed("users", "ssh_authorized_keys") {
		err := applyUsers(next.EffectiveUsers(), o.Apply)
		if err == nil && o.SSH != nil {
			err = o.SSH.Update(sshd.Users(next))
		}
		applied(err, "users", "ssh_authorized_keys")
	}
	if changed("ntp") {
		res.NTPChanged = true
		if next.NTP != nil {
			res.NTPServers = append(append(res.NTPServers, next.NTP.Servers...), next.NTP.Pools...)
		}
		res.Applied = append(res.Applied, "ntp")
	}
	if changed("cluster", "registries") && o.RestartOrchestrator != nil {
		applied(o.RestartOrchestrator(next), "cluster", "registries")
	}
	for _, k := range rebootKeys {
		if changed(k) && !slices.Contains(res.Applied, k) {
			res.NeedsReboot = append(res.NeedsReboot, k)
		}
	}
	return res, nil
}

// changedKeys lists the top-level YAML keys whose values differ.
func changedKeys(a, b *config.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		x, y := va.Field(i), vb.Field(i)
		if isEmpty(x) && isEmpty(y) {
			continue
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// isEmpty treats nil and empty slices and maps alike.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

// Summary is the text `basalt-init config reload` prints.
func (r ReloadResult) Summary() string {
	var b strings.Builder
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	for _, w := range r.Refused {
		fmt.Fprintf(&b, "refused: %s\n", w)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	switch {
	case r.Kept:
		b.WriteString("config unchanged: the current config stays in effect\n")
	case len(r.Changed) == 0:
		b.WriteString("config reloaded: no changes\n")
	default:
		fmt.Fprintf(&b, "config reloaded: changed %s\n", strings.Join(r.Changed, ", "))
		if len(r.Applied) > 0 {
			fmt.Fprintf(&b, "applied: %s\n", strings.Join(r.Applied, ", "))
		}
		if len(r.NeedsReboot) > 0 {
			fmt.Fprintf(&b, "needs a reboot: %s\n", strings.Join(r.NeedsReboot, ", "))
		}
	}
	return b.String()
}
