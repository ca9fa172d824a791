package build

import (
	"archive/tar"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/tree"
)

// tzdataPackage is the Debian package the root's zone files come from.
const tzdataPackage = "tzdata"

// zoneDir is where the device looks for zone files (initsys/identity).
var zoneDir = strings.TrimPrefix(contract.ZoneInfoDir, "/")

// zones returns the time zones the image carries: the spec's timezones
// plus the baked config's timezone. UTC needs no file (the device without
// /etc/localtime is on UTC), so a config of UTC alone brings no tzdata.
func zones(s *spec.Spec) []string {
	set := map[string]bool{}
	for _, z := range s.Timezones {
		set[z] = true
	}
	if s.Config != nil && s.Config.Config.Timezone != nil {
		if z := *s.Config.Config.Timezone; z != "" && !contract.IsUTC(z) {
			set[z] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// zoneFiles are the zone files put below zoneDir, by path relative to it.
type zoneFiles struct {
	files map[string][]byte
	links map[string]string // "all": tzdata's own symlinks, kept as such
}

// readZones reads the zones named from the tzdata .deb f: each zone as a
// regular file (tzdata's symlinks such as UTC -> Etc/UTC are followed), or
// with spec.AllZones every zone of the package except the right/ (leap
// second) variants. A zone tzdata does not have is an error naming where.
func readZones(f debian.Fetched, names []string, where string) (*zoneFiles, error) {
	files, links := map[string][]byte{}, map[string]string{}
	d, err := debian.OpenDeb(f.Path)
	if err != nil {
		return nil, err
	}
	err = d.Extract(func(hdr *tar.Header, r io.Reader) error {
		rel, ok := strings.CutPrefix(hdr.Name, zoneDir+"/")
		if !ok || strings.HasPrefix(rel, "right/") {
			return nil
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(r)
			files[rel] = b
			return err
		case tar.TypeSymlink:
			links[rel] = hdr.Linkname
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	z := &zoneFiles{files: map[string][]byte{}}
	if slices.Contains(names, spec.AllZones) {
		z.files, z.links = files, links
		return z, nil
	}
	for _, n := range names {
		rel, hops := n, 0
		for links[rel] != "" && hops < 8 {
			rel, hops = path.Join(path.Dir(rel), links[rel]), hops+1
		}
		b, ok := files[rel]
		if !ok || !isTZif(b) {
			return nil, invalidf("%s: time zone %q is not in %s %s (names like Europe/Paris, America/New_York; or %q)", where, n, f.Package.Name, f.Version, spec.AllZones)
		}
		z.files[n] = b
	}
	return z, nil
}

// isTZif reports whether b is a compiled zone file (tzfile(5) magic), not
// one of tzdata's tables such as zone1970.tab.
func isTZif(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "TZif" }

// add puts the zone files below zoneDir in t.
func (z *zoneFiles) add(t *tree.Tree) error {
	if z == nil {
		return nil
	}
	for _, rel := range slices.Sorted(maps.Keys(z.files)) {
		if err := t.AddBytes(zoneDir+"/"+rel, 0o644, z.files[rel]); err != nil {
			return err
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(z.links)) {
		if err := t.AddSymlink(zoneDir+"/"+rel, z.links[rel]); err != nil {
			return err
		}
	}
	return nil
}
