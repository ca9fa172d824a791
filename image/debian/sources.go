package debian

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultRelease is the Debian release basalt builds from.
const DefaultRelease = "bookworm"

// Mirrors are the two archives a Debian release lives in.
type Mirrors struct {
	Debian   string // e.g. http://deb.debian.org/debian
	Security string // e.g. http://deb.debian.org/debian-security; "" for none
}

// Sources returns the suites apt would use for release: release and
// release-updates from the Debian mirror, release-security from the
// security mirror when there is one.
func (m Mirrors) Sources(release string) []Source {
	s := []Source{{m.Debian, release}, {m.Debian, release + "-updates"}}
	if m.Security != "" {
		s = append(s, Source{m.Security, release + "-security"})
	}
	return s
}

// FindMirrors picks the mirrors: spec (from the build spec, may be empty),
// else $BASALT_DEBIAN_MIRROR, else the host's apt sources below root ("/"
// for the host). The security mirror comes from
// $BASALT_DEBIAN_SECURITY_MIRROR ("none" disables it), else the host's apt
// sources, else none.
func FindMirrors(spec, root string) (Mirrors, error) {
	host, err := hostMirrors(root)
	if err != nil {
		return Mirrors{}, err
	}
	m := Mirrors{Debian: spec, Security: os.Getenv("BASALT_DEBIAN_SECURITY_MIRROR")}
	if m.Debian == "" {
		m.Debian = os.Getenv("BASALT_DEBIAN_MIRROR")
	}
	if m.Debian == "" {
		m.Debian = host.Debian
	}
	switch m.Security {
	case "":
		m.Security = host.Security
	case "none":
		m.Security = ""
	}
	if m.Debian == "" {
		return Mirrors{}, errors.New("no Debian mirror: set debian.mirror in the spec, or BASALT_DEBIAN_MIRROR=http://deb.debian.org/debian (the host has no deb line in /etc/apt/sources.list*)")
	}
	m.Debian = strings.TrimRight(m.Debian, "/")
	m.Security = strings.TrimRight(m.Security, "/")
	return m, nil
}

// hostMirrors reads one-line (.list) and deb822 (.sources) apt sources.
func hostMirrors(root string) (Mirrors, error) {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d", pat))
		files = append(files, m...)
	}
	sort.Strings(files[1:])
	var m Mirrors
	add := func(uri string, suites []string) {
		for _, s := range suites {
			switch {
			case strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates"):
				if m.Security == "" {
					m.Security = uri
				}
			case !strings.Contains(s, "-") && strings.Contains(uri, "debian"):
				if m.Debian == "" {
					m.Debian = uri
				}
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Mirrors{}, err
		}
		if strings.HasSuffix(f, ".sources") {
			err := ParseParagraphs(bytes.NewReader(data), func(p Paragraph) error {
				if !containsField(p["Types"], "deb") || strings.EqualFold(p["Enabled"], "no") {
					return nil
				}
				for _, uri := range strings.Fields(p["URIs"]) {
					add(uri, strings.Fields(p["Suites"]))
				}
				return nil
			})
			if err != nil {
				return Mirrors{}, fmt.Errorf("%s: %w", f, err)
			}
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			f = f[1:]
			if strings.HasPrefix(f[0], "[") { // [arch=amd64 signed-by=...]
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 {
				add(f[0], f[1:2])
			}
		}
	}
	return m, nil
}

func containsField(v, want string) bool {
	for _, f := range strings.Fields(v) {
		if f == want {
			return true
		}
	}
	return false
}
