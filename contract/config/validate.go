package config

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// validator collects the issues of one document.
type validator struct {
	doc  *Document
	errs Issues
}

func (v *validator) add(p, reason string, allowed ...string) {
	v.errs = append(v.errs, Issue{File: v.doc.File, Line: v.doc.Line(p), Path: p, Reason: reason, Allowed: allowed})
}

// Validate checks every field of one document on its own and returns all
// problems, each with the line of its key. Checks that need the merged
// result (an agent needs a server) are in Merged.Validate.
func Validate(d *Document) Issues {
	v := &validator{doc: d}
	c := &d.Config
	if c.Hostname != nil && !validHostname(*c.Hostname) {
		v.add(".hostname", fmt.Sprintf("invalid hostname %q: 1-63 letters, digits and '-', not starting or ending with '-'", *c.Hostname))
	}
	if c.FQDN != nil && !validDNSName(*c.FQDN) {
		v.add(".fqdn", fmt.Sprintf("invalid fqdn %q: dot-separated hostname labels, at most 253 characters", *c.FQDN))
	}
	if c.Timezone != nil && !validTimezone(*c.Timezone) {
		v.add(".timezone", fmt.Sprintf("invalid time zone %q", *c.Timezone), "UTC", "an IANA name like Europe/Paris")
	}
	for i, u := range c.Users {
		v.user(fmt.Sprintf(".users[%d]", i), u)
	}
	v.keys(".ssh_authorized_keys", c.SSHAuthorizedKeys)
	for i, f := range c.WriteFiles {
		v.writeFile(fmt.Sprintf(".write_files[%d]", i), f)
	}
	if c.NTP != nil {
		v.hosts(".ntp.servers", c.NTP.Servers)
		v.hosts(".ntp.pools", c.NTP.Pools)
	}
	if c.Network != nil {
		for _, name := range slices.Sorted(maps.Keys(c.Network.Interfaces)) {
			v.iface(".network.interfaces"+keyPath(name), name, c.Network.Interfaces[name])
		}
	}
	if c.Cluster != nil {
		v.cluster(c.Cluster)
	}
	if c.Update != nil {
		v.update(c.Update)
	}
	if c.Registries != nil {
		v.registries(c.Registries)
	}
	return v.errs
}

var (
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	userName  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	tzName    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$`)
	ownerRe   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$`)
	hhmm      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	labelKey  = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelVal  = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	ifName    = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)
)

func validHostname(s string) bool { return hostLabel.MatchString(s) }

func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func validTimezone(s string) bool {
	return tzName.MatchString(s) && !strings.Contains(s, "..")
}

// Encodings are the accepted write_files encodings (cloud-init's names).
var Encodings = []string{"text/plain", "b64", "base64", "gzip", "gz", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"}

// DecodeContent returns the bytes of a write_files entry.
func DecodeContent(f WriteFile) ([]byte, error) {
	data := []byte(f.Content)
	enc := strings.ToLower(f.Encoding)
	if strings.Contains(enc, "b64") || strings.Contains(enc, "base64") {
		d, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(f.Content), ""))
		if err != nil {
			return nil, fmt.Errorf("content is not valid base64: %w", err)
		}
		data = d
	}
	if strings.HasPrefix(enc, "gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("content is not valid gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, MaxDocumentSize*16+1))
		if err != nil {
			return nil, fmt.Errorf("content is not valid gzip: %w", err)
		}
		if len(out) > MaxDocumentSize*16 {
			return nil, fmt.Errorf("content expands to more than %d bytes", MaxDocumentSize*16)
		}
		data = out
	}
	return data, nil
}

// Mode returns the permissions of a write_files entry (default 0644).
func (f WriteFile) Mode() (uint32, error) {
	if f.Permissions == "" {
		return 0o644, nil
	}
	s := strings.TrimPrefix(strings.TrimPrefix(f.Permissions, "0o"), "0")
	if s == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid permissions %q: an octal mode such as '0644'", f.Permissions)
	}
	return uint32(m), nil
}

func (v *validator) user(p string, u User) {
	if u.Name == "" {
		v.add(p+".name", "a user needs a name")
	} else if u.Name != "default" && !userName.MatchString(u.Name) {
		v.add(p+".name", fmt.Sprintf("invalid user name %q: lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32", u.Name))
	}
	if u.PrimaryGroup != nil && !userName.MatchString(*u.PrimaryGroup) {
		v.add(p+".primary_group", fmt.Sprintf("invalid group name %q", *u.PrimaryGroup))
	}
	for i, g := range u.Groups {
		if !userName.MatchString(g) {
			v.add(fmt.Sprintf("%s.groups[%d]", p, i), fmt.Sprintf("invalid group name %q", g))
		}
	}
	v.keys(p+".ssh_authorized_keys", u.SSHAuthorizedKeys)
	for _, pw := range []struct {
		key string
		s   *Secret
	}{{".passwd", u.Passwd}, {".hashed_passwd", u.HashedPasswd}} {
		if pw.s != nil && !validHash(string(*pw.s)) {
			v.add(p+pw.key, "not a crypt(3) password hash; plain-text passwords are not accepted", "$6$...", "$5$...", "$y$...", "$2b$...", "!", "*")
		}
	}
	if u.Shell != nil && !path.IsAbs(*u.Shell) {
		v.add(p+".shell", fmt.Sprintf("shell %q must be an absolute path", *u.Shell))
	}
	if u.HomeDir != nil && !path.IsAbs(*u.HomeDir) {
		v.add(p+".homedir", fmt.Sprintf("homedir %q must be an absolute path", *u.HomeDir))
	}
	if u.UID != nil && (*u.UID < 0 || *u.UID > 65533) {
		v.add(p+".uid", fmt.Sprintf("uid %d out of range 0-65533", *u.UID))
	}
}

var cryptHash = regexp.MustCompile(`^\$(1|2[abxy]|5|6|y|gy|7)\$[./A-Za-z0-9$=,]+$`)

func validHash(s string) bool {
	return s == "!" || s == "*" || s == "!*" || cryptHash.MatchString(s)
}

func (v *validator) keys(p string, keys []string) {
	for i, k := range keys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			v.add(fmt.Sprintf("%s[%d]", p, i), "not an OpenSSH public key (authorized_keys line such as 'ssh-ed25519 AAAA... comment')")
		}
	}
}

func (v *validator) writeFile(p string, f WriteFile) {
	switch {
	case f.Path == "":
		v.add(p+".path", "a file needs a path")
	case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/":
		v.add(p+".path", fmt.Sprintf("path %q must be absolute and clean (no '..', no trailing '/')", f.Path))
	}
	if f.Encoding != "" && !slices.Contains(Encodings, strings.ToLower(f.Encoding)) {
		v.add(p+".encoding", fmt.Sprintf("unknown encoding %q", f.Encoding), Encodings...)
	} else if _, err := DecodeContent(f); err != nil {
		v.add(p+".content", err.Error())
	}
	if f.Owner != "" && !ownerRe.MatchString(f.Owner) {
		v.add(p+".owner", fmt.Sprintf("invalid owner %q: user or user:group", f.Owner))
	}
	if _, err := f.Mode(); err != nil {
		v.add(p+".permissions", err.Error())
	}
}

func (v *validator) hosts(p string, hosts []string) {
	for i, h := range hosts {
		if _, err := netip.ParseAddr(h); err != nil && !validDNSName(h) {
			v.add(fmt.Sprintf("%s[%d]", p, i), fmt.Sprintf("invalid host %q: a DNS name or an IP address", h))
		}
	}
}

func (v *validator) addrs(p string, addrs []string) {
	for i, a := range addrs {
		if _, err := netip.ParseAddr(a); err != nil {
			v.add(fmt.Sprintf("%s[%d]", p, i), fmt.Sprintf("invalid IP address %q", a))
		}
	}
}

func (v *validator) iface(p, name string, in Interface) {
	if in.Match == nil && !ifName.MatchString(name) {
		v.add(p, fmt.Sprintf("invalid interface name %q: at most 15 characters, or set match", name))
	}
	if in.Match != nil && in.Match.MACAddress != nil {
		if _, err := parseMAC(*in.Match.MACAddress); err != nil {
			v.add(p+".match.macaddress", fmt.Sprintf("invalid MAC address %q: six hex pairs such as 52:54:00:12:34:56", *in.Match.MACAddress))
		}
	}
	if in.Match != nil && in.Match.Name != nil {
		if _, err := path.Match(*in.Match.Name, ""); err != nil {
			v.add(p+".match.name", fmt.Sprintf("invalid name pattern %q", *in.Match.Name))
		}
	}
	for i, a := range in.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			v.add(fmt.Sprintf("%s.addresses[%d]", p, i), fmt.Sprintf("invalid address %q: an address with prefix length such as 192.168.1.10/24", a))
		}
	}
	for _, g := range []struct {
		key string
		ip  *string
		v4  bool
	}{{".gateway4", in.Gateway4, true}, {".gateway6", in.Gateway6, false}} {
		if g.ip == nil {
			continue
		}
		if a, err := netip.ParseAddr(*g.ip); err != nil || a.Unmap().Is4() != g.v4 {
			v.add(p+g.key, fmt.Sprintf("invalid gateway %q: an IPv%s address", *g.ip, map[bool]string{true: "4", false: "6"}[g.v4]))
		}
	}
	for i, r := range in.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		if _, err := netip.ParsePrefix(r.To); err != nil && r.To != "default" {
			v.add(rp+".to", fmt.Sprintf("invalid route destination %q: a prefix such as 10.0.0.0/8, or default", r.To))
		}
		if r.Via != "" {
			if _, err := netip.ParseAddr(r.Via); err != nil {
				v.add(rp+".via", fmt.Sprintf("invalid gateway %q", r.Via))
			}
		}
	}
	if in.Nameservers != nil {
		v.addrs(p+".nameservers.addresses", in.Nameservers.Addresses)
		for i, s := range in.Nameservers.Search {
			if !validDNSName(s) {
				v.add(fmt.Sprintf("%s.nameservers.search[%d]", p, i), fmt.Sprintf("invalid search domain %q", s))
			}
		}
	}
	if in.MTU != nil && (*in.MTU < 68 || *in.MTU > 65535) {
		v.add(p+".mtu", fmt.Sprintf("mtu %d out of range 68-65535", *in.MTU))
	}
}

func parseMAC(s string) ([]byte, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fmt.Errorf("want 6 parts")
	}
	b := make([]byte, 6)
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return nil, fmt.Errorf("bad part %q", p)
		}
		b[i] = byte(n)
	}
	return b, nil
}

// Taint effects accepted by Kubernetes.
var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

func (v *validator) cluster(c *Cluster) {
	if c.Role != nil && *c.Role != RoleServer && *c.Role != RoleAgent {
		v.add(".cluster.role", fmt.Sprintf("unknown role %q", *c.Role), RoleServer, RoleAgent)
	}
	if c.Server != nil && *c.Server != "" {
		if u, err := url.Parse(*c.Server); err != nil || u.Scheme != "https" || u.Host == "" {
			v.add(".cluster.server", fmt.Sprintf("server %q must be an https URL such as https://10.0.0.1:6443", *c.Server))
		}
	}
	if c.Token != nil && c.TokenFile != nil {
		v.add(".cluster.token_file", "set token or token_file, not both")
	}
	if c.TokenFile != nil && !path.IsAbs(*c.TokenFile) {
		v.add(".cluster.token_file", fmt.Sprintf("token_file %q must be an absolute path", *c.TokenFile))
	}
	if c.NodeName != nil && !validDNSName(*c.NodeName) {
		v.add(".cluster.node_name", fmt.Sprintf("invalid node name %q: a DNS name", *c.NodeName))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		p := ".cluster.labels" + keyPath(k)
		if !labelKey.MatchString(k) {
			v.add(p, fmt.Sprintf("invalid label key %q", k))
		} else if !labelVal.MatchString(c.Labels[k]) {
			v.add(p, fmt.Sprintf("invalid label value %q: at most 63 letters, digits, '-', '_', '.'", c.Labels[k]))
		}
	}
	for i, t := range c.Taints {
		kv, effect, ok := strings.Cut(t, ":")
		k, val, _ := strings.Cut(kv, "=")
		p := fmt.Sprintf(".cluster.taints[%d]", i)
		switch {
		case !ok || !labelKey.MatchString(k) || !labelVal.MatchString(val):
			v.add(p, fmt.Sprintf("invalid taint %q: key[=value]:Effect", t))
		case !slices.Contains(taintEffects, effect):
			v.add(p, fmt.Sprintf("invalid taint effect %q", effect), taintEffects...)
		}
	}
	if c.NodeIP != nil {
		if _, err := netip.ParseAddr(*c.NodeIP); err != nil {
			v.add(".cluster.node_ip", fmt.Sprintf("invalid node IP %q: an IPv4 or IPv6 address", *c.NodeIP))
		}
	}
	if c.Datastore != nil {
		// Not url.Parse: k3s' MySQL endpoint is a DSN, mysql://u:p@tcp(host:3306)/db.
		ds := string(*c.Datastore)
		scheme, rest, _ := strings.Cut(ds, "://")
		if ds != DatastoreSQLite && ds != DatastoreEtcd && (rest == "" || !slices.Contains([]string{"postgres", "mysql", "http", "https"}, scheme)) {
			v.add(".cluster.datastore", "invalid datastore endpoint", DatastoreSQLite, DatastoreEtcd, "postgres://...", "mysql://...", "https://etcd...")
		}
	}
	for i, a := range c.ExtraArgs {
		if !strings.HasPrefix(a, "-") {
			v.add(fmt.Sprintf(".cluster.extra_args[%d]", i), fmt.Sprintf("extra argument %q must start with '-' (one flag per entry, --flag=value)", a))
		}
	}
}

// Weekdays are the accepted maintenance window days.
var Weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func (v *validator) update(u *Update) {
	if u.Channel != nil {
		if pu, err := url.Parse(*u.Channel); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			v.add(".update.channel", fmt.Sprintf("channel %q must be an http or https URL", *u.Channel))
		}
	}
	if u.Interval != nil {
		if d, err := time.ParseDuration(*u.Interval); err != nil || d < time.Minute {
			v.add(".update.interval", fmt.Sprintf("interval %q must be a duration of at least 1m, such as 6h", *u.Interval))
		}
	}
	if u.Jitter != nil {
		if d, err := time.ParseDuration(*u.Jitter); err != nil || d < 0 {
			v.add(".update.jitter", fmt.Sprintf("jitter %q must be a duration of 0 or more, such as 10m", *u.Jitter))
		}
	}
	if u.HealthTimeout != nil {
		if d, err := time.ParseDuration(*u.HealthTimeout); err != nil || d < 10*time.Second {
			v.add(".update.health_timeout", fmt.Sprintf("health_timeout %q must be a duration of at least 10s, such as 10m", *u.HealthTimeout))
		}
	}
	if u.Push != nil {
		if _, port, err := net.SplitHostPort(*u.Push); err != nil || port == "" {
			v.add(".update.push", fmt.Sprintf("push %q must be an address host:port, such as :7443", *u.Push))
		}
	}
	if u.Tries != nil && (*u.Tries < 1 || *u.Tries > 10) {
		v.add(".update.tries", fmt.Sprintf("tries %d must be between 1 and 10", *u.Tries))
	}
	if w := u.Window; w != nil {
		if !hhmm.MatchString(w.Start) {
			v.add(".update.window.start", fmt.Sprintf("start %q must be HH:MM", w.Start))
		}
		if d, err := time.ParseDuration(w.Duration); err != nil || d <= 0 || d > 24*time.Hour {
			v.add(".update.window.duration", fmt.Sprintf("duration %q must be a duration between 1s and 24h, such as 2h", w.Duration))
		}
		for i, d := range w.Days {
			if !slices.Contains(Weekdays, d) {
				v.add(fmt.Sprintf(".update.window.days[%d]", i), fmt.Sprintf("unknown day %q", d), Weekdays...)
			}
		}
	}
}

func (v *validator) registries(r *Registries) {
	for _, host := range slices.Sorted(maps.Keys(r.Mirrors)) {
		p := ".registries.mirrors" + keyPath(host)
		for i, e := range r.Mirrors[host].Endpoints {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.add(fmt.Sprintf("%s.endpoint[%d]", p, i), fmt.Sprintf("endpoint %q must be an http or https URL", e))
			}
		}
	}
	for _, host := range slices.Sorted(maps.Keys(r.Configs)) {
		p := ".registries.configs" + keyPath(host)
		if tls := r.Configs[host].TLS; tls != nil {
			for _, f := range []struct {
				key string
				s   *string
			}{{".ca_file", tls.CAFile}, {".cert_file", tls.CertFile}, {".key_file", tls.KeyFile}} {
				if f.s != nil && !path.IsAbs(*f.s) {
					v.add(p+".tls"+f.key, fmt.Sprintf("%q must be an absolute path", *f.s))
				}
			}
		}
	}
}
