// Package config is the device-config schema shared by the build host (the
// spec's `config:` section, `basalt config ...`) and the device (the init's
// hostname, network, clock, users and orchestrator steps).
//
// A device config is read from YAML documents of two formats: a versioned
// basalt document (apiVersion basalt.dev/v1alpha1, kind DeviceConfig; unknown
// keys are errors) and a `#cloud-config` user-data document (cloud-init keys
// of the supported subset mean what cloud-init documents; other keys are
// reported by name as unsupported warnings). Documents are merged in source
// order (Merge), later wins per key; see docs/config.md for list semantics.
//
// Pointer fields distinguish "unset" (nil: an earlier source's value stays)
// from "empty" (a later source clears the value). A non-nil empty slice
// likewise clears a replaced list.
//
// The package imports neither image/ nor initsys/.
package config

// Document identity of a versioned basalt device-config document.
const (
	APIVersion = "basalt.dev/v1alpha1"
	Kind       = "DeviceConfig"
	// CloudConfigHeader is the first line of a cloud-init user-data document.
	CloudConfigHeader = "#cloud-config"
)

// DefaultUser is the user that cloud-init's "default" entry in `users`, and
// top-level `ssh_authorized_keys`, refer to.
const DefaultUser = "basalt"

// Config is the device configuration: one drop-in, or the merged result.
type Config struct {
	// Hostname is the short host name (RFC 1123 label).
	Hostname *string `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	// FQDN, when set, is written to /etc/hosts; its first label is the
	// hostname when Hostname is unset (cloud-init semantics).
	FQDN *string `yaml:"fqdn,omitempty" json:"fqdn,omitempty"`
	// Timezone is an IANA zone name such as "Europe/Paris" or "UTC".
	Timezone *string `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	// Users to create; the entry "default" means DefaultUser.
	// Merge: by name, later sources merge per key into the same user.
	Users []User `yaml:"users,omitempty" json:"users,omitempty"`
	// SSHAuthorizedKeys are keys for DefaultUser (cloud-init top-level key).
	// Merge: appended, duplicates dropped.
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty" json:"ssh_authorized_keys,omitempty"`
	// WriteFiles are files written at boot. Merge: appended.
	WriteFiles []WriteFile `yaml:"write_files,omitempty" json:"write_files,omitempty"`
	// NTP configures time synchronisation.
	NTP *NTP `yaml:"ntp,omitempty" json:"ntp,omitempty"`
	// Network configures interfaces (basalt extension; cloud-init reads
	// network config from a separate file).
	Network *Network `yaml:"network,omitempty" json:"network,omitempty"`
	// Cluster configures the orchestrator (k3s).
	Cluster *Cluster `yaml:"cluster,omitempty" json:"cluster,omitempty"`
	// Update configures the OTA pull channel.
	Update *Update `yaml:"update,omitempty" json:"update,omitempty"`
	// Registries configures container registry mirrors and credentials
	// (k3s registries.yaml).
	Registries *Registries `yaml:"registries,omitempty" json:"registries,omitempty"`
}

// Secret is a string that is never printed: String and GoString redact it,
// and Config.Redacted replaces it. YAML and JSON encoding keep the value
// (the last good config on the data partition needs it; that file is 0600).
type Secret string

// Redacted is what a Secret prints as.
const Redacted = "<redacted>"

func (s Secret) String() string   { return Redacted }
func (s Secret) GoString() string { return Redacted }

// User is an account. In YAML an entry is either a mapping or a bare name
// (cloud-init allows both; "default" names DefaultUser).
type User struct {
	Name  string  `yaml:"name" json:"name"`
	Gecos *string `yaml:"gecos,omitempty" json:"gecos,omitempty"`
	// PrimaryGroup defaults to a group named like the user.
	PrimaryGroup *string `yaml:"primary_group,omitempty" json:"primary_group,omitempty"`
	// Groups are supplementary groups; YAML accepts a list or "a, b".
	Groups StringList `yaml:"groups,omitempty" json:"groups,omitempty"`
	// SSHAuthorizedKeys are OpenSSH authorized_keys lines. Merge: appended.
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty" json:"ssh_authorized_keys,omitempty"`
	// Passwd is a crypt(3) hash for /etc/shadow ("$6$..."), never plain text.
	Passwd *Secret `yaml:"passwd,omitempty" json:"passwd,omitempty"`
	// HashedPasswd is cloud-init's other name for Passwd; Passwd wins.
	HashedPasswd *Secret `yaml:"hashed_passwd,omitempty" json:"hashed_passwd,omitempty"`
	// LockPasswd locks password login (default true, as in cloud-init).
	LockPasswd *bool   `yaml:"lock_passwd,omitempty" json:"lock_passwd,omitempty"`
	Shell      *string `yaml:"shell,omitempty" json:"shell,omitempty"`
	// HomeDir defaults to /home/NAME (on the data partition).
	HomeDir *string `yaml:"homedir,omitempty" json:"homedir,omitempty"`
	UID     *int    `yaml:"uid,omitempty" json:"uid,omitempty"`
}

// StringList is a list of strings; in YAML also a comma-separated string.
type StringList []string

// WriteFile is a file written at boot (cloud-init write_files).
type WriteFile struct {
	Path    string `yaml:"path" json:"path"`
	Content string `yaml:"content,omitempty" json:"content,omitempty"`
	// Encoding of Content: "" or text/plain, b64 (base64), gzip (gz), gz+b64
	// (gzip+base64, gz+base64, gzip+b64).
	Encoding string `yaml:"encoding,omitempty" json:"encoding,omitempty"`
	// Owner is "user[:group]", default root:root.
	Owner string `yaml:"owner,omitempty" json:"owner,omitempty"`
	// Permissions is an octal mode string, default "0644".
	Permissions string `yaml:"permissions,omitempty" json:"permissions,omitempty"`
	// Append adds Content to the end of an existing file.
	Append bool `yaml:"append,omitempty" json:"append,omitempty"`
	// Defer writes the file after users are created (cloud-init: after
	// packages and users); basalt writes non-deferred files before users.
	Defer bool `yaml:"defer,omitempty" json:"defer,omitempty"`
}

// NTP configures the clock step (cloud-init `ntp`).
type NTP struct {
	Enabled *bool    `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	Servers []string `yaml:"servers,omitempty" json:"servers,omitempty"`
	Pools   []string `yaml:"pools,omitempty" json:"pools,omitempty"`
}

// Network configures interfaces, keyed by a name of the user's choice
// (the interface name unless Match says otherwise).
type Network struct {
	Interfaces map[string]Interface `yaml:"interfaces,omitempty" json:"interfaces,omitempty"`
}

// Interface is one interface's configuration. Static addresses and DHCP may
// be combined.
type Interface struct {
	// Match selects the interface; default: the interface named like the key.
	Match *Match `yaml:"match,omitempty" json:"match,omitempty"`
	DHCP4 *bool  `yaml:"dhcp4,omitempty" json:"dhcp4,omitempty"`
	DHCP6 *bool  `yaml:"dhcp6,omitempty" json:"dhcp6,omitempty"`
	// Addresses are static addresses in CIDR form, "192.168.1.10/24".
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	// Gateway4 and Gateway6 add default routes.
	Gateway4    *string      `yaml:"gateway4,omitempty" json:"gateway4,omitempty"`
	Gateway6    *string      `yaml:"gateway6,omitempty" json:"gateway6,omitempty"`
	Routes      []Route      `yaml:"routes,omitempty" json:"routes,omitempty"`
	Nameservers *Nameservers `yaml:"nameservers,omitempty" json:"nameservers,omitempty"`
	MTU         *int         `yaml:"mtu,omitempty" json:"mtu,omitempty"`
}

// Match selects an interface by name (glob as in path.Match) or MAC address.
type Match struct {
	Name       *string `yaml:"name,omitempty" json:"name,omitempty"`
	MACAddress *string `yaml:"macaddress,omitempty" json:"macaddress,omitempty"`
}

// Route is a static route; To is a CIDR prefix or "default".
type Route struct {
	To     string `yaml:"to" json:"to"`
	Via    string `yaml:"via,omitempty" json:"via,omitempty"`
	Metric *int   `yaml:"metric,omitempty" json:"metric,omitempty"`
}

// Nameservers are DNS servers and search domains for /etc/resolv.conf.
type Nameservers struct {
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty" json:"search,omitempty"`
}

// Cluster roles.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Datastores that are not endpoint URLs.
const (
	DatastoreSQLite = "sqlite"
	DatastoreEtcd   = "etcd"
)

// Cluster configures k3s.
type Cluster struct {
	// Role is RoleServer or RoleAgent.
	Role *string `yaml:"role,omitempty" json:"role,omitempty"`
	// Server is the URL an agent (or a joining server) joins, https://host:6443.
	Server *string `yaml:"server,omitempty" json:"server,omitempty"`
	// Token is the join token; TokenFile names a file holding it. At most one.
	Token     *Secret `yaml:"token,omitempty" json:"token,omitempty"`
	TokenFile *string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	NodeName  *string `yaml:"node_name,omitempty" json:"node_name,omitempty"`
	// NodeIP is the node's address (k3s node-ip); unset: the address of
	// the interface with the IPv4 default route.
	NodeIP *string `yaml:"node_ip,omitempty" json:"node_ip,omitempty"`
	// Labels are node labels. Merge: per key.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Taints are "key[=value]:Effect".
	Taints []string `yaml:"taints,omitempty" json:"taints,omitempty"`
	// Datastore is DatastoreSQLite (default), DatastoreEtcd (k3s' embedded
	// etcd: the first server of an HA trio has no Server, the others join
	// it) or an endpoint URL: postgres://, mysql://, https:// or http://
	// (an external etcd). A password in it is a secret.
	Datastore *Secret `yaml:"datastore,omitempty" json:"datastore,omitempty"`
	// ExtraArgs are appended to the k3s command line.
	ExtraArgs []string `yaml:"extra_args,omitempty" json:"extra_args,omitempty"`
}

// Update configures the OTA pull channel.
type Update struct {
	// Channel is the http(s) URL of the update channel.
	Channel *string `yaml:"channel,omitempty" json:"channel,omitempty"`
	// Interval between checks, a Go duration ("6h"), at least 1m.
	Interval *string `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Window restricts when updates are applied; unset means any time.
	Window *Window `yaml:"window,omitempty" json:"window,omitempty"`
	// Jitter is a random delay up to this duration added to each check, so
	// a fleet does not poll at once ("10m"; default 0).
	Jitter *string `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	// AllowDowngrade lets the device install a lower version when the
	// bundle allows it too (default false).
	AllowDowngrade *bool `yaml:"allow_downgrade,omitempty" json:"allow_downgrade,omitempty"`
	// Tries is how many times the bootloader boots a new slot before it
	// falls back (1-10, default 3).
	Tries *int `yaml:"tries,omitempty" json:"tries,omitempty"`
	// Push is the address ("host:port", e.g. ":7443") of the device's push
	// endpoint: a POST of {"source": URL} makes it fetch and apply that
	// bundle, trusting only the signature. Unset (default): off.
	Push *string `yaml:"push,omitempty" json:"push,omitempty"`
	// HealthTimeout bounds the health gate of a trial boot: not healthy
	// by then, the device reboots ("5m"; default 10m).
	HealthTimeout *string `yaml:"health_timeout,omitempty" json:"health_timeout,omitempty"`
}

// Window is a daily maintenance window in the device's time zone.
type Window struct {
	// Start is "HH:MM".
	Start string `yaml:"start" json:"start"`
	// Duration is a Go duration, at most 24h.
	Duration string `yaml:"duration" json:"duration"`
	// Days are mon..sun; empty means every day.
	Days []string `yaml:"days,omitempty" json:"days,omitempty"`
}

// Registries is k3s' registries.yaml.
type Registries struct {
	Mirrors map[string]Mirror         `yaml:"mirrors,omitempty" json:"mirrors,omitempty"`
	Configs map[string]RegistryConfig `yaml:"configs,omitempty" json:"configs,omitempty"`
}

// Mirror lists endpoints for a registry host.
type Mirror struct {
	Endpoints []string `yaml:"endpoint" json:"endpoint"`
}

// RegistryConfig holds a registry's credentials and TLS settings.
type RegistryConfig struct {
	Auth *RegistryAuth `yaml:"auth,omitempty" json:"auth,omitempty"`
	TLS  *RegistryTLS  `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// RegistryAuth are registry credentials.
type RegistryAuth struct {
	Username      *string `yaml:"username,omitempty" json:"username,omitempty"`
	Password      *Secret `yaml:"password,omitempty" json:"password,omitempty"`
	Auth          *Secret `yaml:"auth,omitempty" json:"auth,omitempty"`
	IdentityToken *Secret `yaml:"identity_token,omitempty" json:"identity_token,omitempty"`
}

// RegistryTLS are a registry's TLS settings (paths on the device).
type RegistryTLS struct {
	CAFile             *string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	CertFile           *string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile            *string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	InsecureSkipVerify *bool   `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}
