package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Origin is where a merged key was set.
type Origin struct {
	File string
	Line int
}

func (o Origin) String() string {
	if o.Line > 0 {
		return o.File + ":" + strconv.Itoa(o.Line)
	}
	return o.File
}

// Merged is the result of merging documents: the config and, for each YAML
// path that was set, the source that set it last.
type Merged struct {
	Config  Config
	Origins map[string]Origin
}

// Merge merges documents in order; later wins per key. Lists replace the
// earlier list, except:
//   - users merge by name: a later entry for the same user merges per key
//     into it (its ssh_authorized_keys append);
//   - ssh_authorized_keys (top level and per user) append, duplicates dropped;
//   - write_files append (a later entry for the same path is written later).
//
// Maps (network.interfaces, cluster.labels, registries) merge per key.
// cluster.token and cluster.token_file exclude each other: setting one in a
// later document clears the other.
func Merge(docs ...*Document) *Merged {
	m := &Merged{Origins: map[string]Origin{}}
	for _, d := range docs {
		mg := &merger{m: m, d: d}
		mg.value(reflect.ValueOf(&m.Config).Elem(), reflect.ValueOf(&d.Config).Elem(), "", "")
		if c := d.Config.Cluster; c != nil && m.Config.Cluster != nil {
			if c.Token != nil && c.TokenFile == nil && m.Config.Cluster.TokenFile != nil {
				m.Config.Cluster.TokenFile = nil
				m.forget(".cluster.token_file")
			}
			if c.TokenFile != nil && c.Token == nil && m.Config.Cluster.Token != nil {
				m.Config.Cluster.Token = nil
				m.forget(".cluster.token")
			}
		}
	}
	return m
}

// Source returns where the value at path (or its nearest set ancestor) came from.
func (m *Merged) Source(path string) (Origin, bool) {
	for path != "" {
		if o, ok := m.Origins[path]; ok {
			return o, true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Origin{}, false
}

// forget drops the origins of path and everything below it.
func (m *Merged) forget(path string) {
	for k := range m.Origins {
		if k == path || strings.HasPrefix(k, path+".") || strings.HasPrefix(k, path+"[") {
			delete(m.Origins, k)
		}
	}
}

type merger struct {
	m *Merged
	d *Document
}

func (g *merger) set(dstPath, srcPath string) {
	g.m.forget(dstPath)
	g.m.Origins[dstPath] = Origin{File: g.d.File, Line: g.d.Line(srcPath)}
}

// value merges src into dst; dp and sp are the YAML paths in the merged
// config and in the source document.
func (g *merger) value(dst, src reflect.Value, dp, sp string) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if src.Elem().Kind() == reflect.Struct {
			if dst.IsNil() {
				dst.Set(reflect.New(src.Type().Elem()))
				g.m.Origins[dp] = Origin{File: g.d.File, Line: g.d.Line(sp)}
			}
			g.value(dst.Elem(), src.Elem(), dp, sp)
			return
		}
		p := reflect.New(src.Type().Elem())
		p.Elem().Set(src.Elem())
		dst.Set(p)
		g.set(dp, sp)
	case reflect.Struct:
		t := src.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			g.value(dst.Field(i), src.Field(i), dp+"."+name, sp+"."+name)
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		switch {
		case src.Type() == reflect.TypeFor[[]User]():
			g.users(dst, src, dp, sp)
		case strings.HasSuffix(dp, ".ssh_authorized_keys") || dp == ".write_files":
			g.appendList(dst, src, dp, sp, dp != ".write_files")
		default:
			dst.Set(copySlice(src))
			g.set(dp, sp)
			for i := 0; i < src.Len(); i++ {
				g.m.Origins[fmt.Sprintf("%s[%d]", dp, i)] = Origin{File: g.d.File, Line: g.d.Line(fmt.Sprintf("%s[%d]", sp, i))}
			}
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(src.Type()))
		}
		keys := src.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			kp := keyPath(k.String())
			sv := src.MapIndex(k)
			if sv.Kind() == reflect.Struct {
				nv := reflect.New(sv.Type()).Elem()
				if old := dst.MapIndex(k); old.IsValid() {
					nv.Set(old)
				} else {
					g.m.Origins[dp+kp] = Origin{File: g.d.File, Line: g.d.Line(sp + kp)}
				}
				g.value(nv, sv, dp+kp, sp+kp)
				dst.SetMapIndex(k, nv)
				continue
			}
			dst.SetMapIndex(k, sv)
			g.set(dp+kp, sp+kp)
		}
	default:
		// Plain scalars inside list entries and windows: set when non-zero.
		if !src.IsZero() {
			dst.Set(src)
			g.set(dp, sp)
		}
	}
}

func copySlice(src reflect.Value) reflect.Value {
	s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
	reflect.Copy(s, src)
	return s
}

func (g *merger) appendList(dst, src reflect.Value, dp, sp string, dedupe bool) {
	if dst.IsNil() {
		dst.Set(reflect.MakeSlice(src.Type(), 0, src.Len()))
		g.m.Origins[dp] = Origin{File: g.d.File, Line: g.d.Line(sp)}
	}
	for i := 0; i < src.Len(); i++ {
		e := src.Index(i)
		if dedupe && containsValue(dst, e) {
			continue
		}
		g.m.Origins[fmt.Sprintf("%s[%d]", dp, dst.Len())] = Origin{File: g.d.File, Line: g.d.Line(fmt.Sprintf("%s[%d]", sp, i))}
		dst.Set(reflect.Append(dst, e))
	}
}

func containsValue(list, e reflect.Value) bool {
	for i := 0; i < list.Len(); i++ {
		if list.Index(i).Interface() == e.Interface() {
			return true
		}
	}
	return false
}

func (g *merger) users(dst, src reflect.Value, dp, sp string) {
	if dst.IsNil() {
		dst.Set(reflect.MakeSlice(src.Type(), 0, src.Len()))
		g.m.Origins[dp] = Origin{File: g.d.File, Line: g.d.Line(sp)}
	}
	for i := 0; i < src.Len(); i++ {
		su := src.Index(i)
		esp := fmt.Sprintf("%s[%d]", sp, i)
		j := 0
		for ; j < dst.Len(); j++ {
			if dst.Index(j).FieldByName("Name").String() == su.FieldByName("Name").String() {
				break
			}
		}
		if j == dst.Len() {
			dst.Set(reflect.Append(dst, reflect.New(su.Type()).Elem()))
			g.m.Origins[fmt.Sprintf("%s[%d]", dp, j)] = Origin{File: g.d.File, Line: g.d.Line(esp)}
		}
		g.value(dst.Index(j), su, fmt.Sprintf("%s[%d]", dp, j), esp)
	}
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	b, err := yaml.Marshal(c)
	out := &Config{}
	if err == nil {
		err = yaml.Unmarshal(b, out)
	}
	if err != nil {
		panic(fmt.Sprintf("config: clone: %v", err)) // the schema always round-trips
	}
	return out
}

// Redacted returns a copy of c whose secrets (passwords, tokens, registry
// credentials, a datastore URL's password) read Redacted: the view for logs,
// status and `basalt config show`.
func (c *Config) Redacted() *Config {
	r := c.Clone()
	redact(reflect.ValueOf(r).Elem())
	if r.Cluster != nil && r.Cluster.Datastore != nil {
		ds := Secret(redactURL(string(*c.Cluster.Datastore)))
		r.Cluster.Datastore = &ds
	}
	return r
}

func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":" + Redacted + rest[at:]
}

var typeSecret = reflect.TypeFor[Secret]()

func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redact(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			redact(v.Field(i))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			redact(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			redact(e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if v.Type() == typeSecret && v.Len() > 0 {
			v.SetString(Redacted)
		}
	}
}

// Validate checks what only the merged config can tell: an agent needs a
// server and a token; a server with a server to join needs embedded etcd. Each issue names the source that set the key.
func (m *Merged) Validate() Issues {
	var errs Issues
	add := func(p, reason string) {
		o, _ := m.Source(p)
		errs = append(errs, Issue{File: o.File, Line: o.Line, Path: p, Reason: reason})
	}
	if c := m.Config.Cluster; c != nil && c.Role != nil && *c.Role == RoleAgent {
		if c.Server == nil || *c.Server == "" {
			add(".cluster.role", "an agent needs cluster.server")
		}
		if c.Token == nil && c.TokenFile == nil {
			add(".cluster.role", "an agent needs cluster.token or cluster.token_file")
		}
	}
	if c := m.Config.Cluster; c != nil && (c.Role == nil || *c.Role == RoleServer) && c.Server != nil && *c.Server != "" &&
		(c.Datastore == nil || *c.Datastore == DatastoreSQLite) {
		add(".cluster.server", "a server joins another server only with embedded etcd (datastore: etcd); with SQLite it runs alone")
	}
	return errs
}

// Warnings reports merged settings that have no effect.
func (m *Merged) Warnings() Issues {
	var ws Issues
	if len(m.Config.SSHAuthorizedKeys) > 0 && m.Config.Users != nil && !hasUser(m.Config.Users, "default") && !hasUser(m.Config.Users, DefaultUser) {
		o, _ := m.Source(".ssh_authorized_keys")
		ws = append(ws, Issue{File: o.File, Line: o.Line, Path: ".ssh_authorized_keys", Reason: `unused: users does not list "default", so no user receives these keys`})
	}
	return ws
}

func hasUser(us []User, name string) bool {
	for _, u := range us {
		if u.Name == name {
			return true
		}
	}
	return false
}

// EffectiveUsers resolves cloud-init's default user: "default" entries
// become DefaultUser with the top-level ssh_authorized_keys; when users is
// unset and top-level keys exist, DefaultUser alone. hashed_passwd fills
// passwd, and lock_passwd defaults to true.
func (c *Config) EffectiveUsers() []User {
	users := c.Users
	if users == nil && len(c.SSHAuthorizedKeys) > 0 {
		users = []User{{Name: "default"}}
	}
	var out []User
	for _, u := range users {
		if u.Name == "default" || u.Name == DefaultUser {
			u.Name = DefaultUser
			u.SSHAuthorizedKeys = append(append([]string(nil), u.SSHAuthorizedKeys...), c.SSHAuthorizedKeys...)
		}
		if u.Passwd == nil {
			u.Passwd = u.HashedPasswd
		}
		u.HashedPasswd = nil
		if u.LockPasswd == nil {
			t := true
			u.LockPasswd = &t
		}
		if i := userIndex(out, u.Name); i >= 0 {
			out[i].SSHAuthorizedKeys = append(out[i].SSHAuthorizedKeys, u.SSHAuthorizedKeys...)
			continue
		}
		out = append(out, u)
	}
	return out
}

func userIndex(us []User, name string) int {
	for i, u := range us {
		if u.Name == name {
			return i
		}
	}
	return -1
}

// EffectiveHostname is Hostname, else the first label of FQDN, else "".
func (c *Config) EffectiveHostname() string {
	if c.Hostname != nil {
		return *c.Hostname
	}
	if c.FQDN != nil {
		h, _, _ := strings.Cut(*c.FQDN, ".")
		return h
	}
	return ""
}

// MarshalDocument encodes c as a versioned basalt document (secrets
// included: write it 0600). Parse reads it back.
func MarshalDocument(c *Config) ([]byte, error) {
	b, err := yaml.Marshal(basaltDoc{APIVersion: APIVersion, Kind: Kind, Config: *c})
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}
