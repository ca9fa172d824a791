// Package blockdev finds block devices on the device by GPT partition name
// (PARTLABEL), from the kernel's /sys/class/block/*/uevent files, waiting for
// them to appear: disk drivers probe asynchronously after their module loads.
// MBR partitions have no names: on a disk whose first partition is the FAT
// labelled contract.BootFSLabel they are named by position
// (contract.MBRPartitions), so both tables are found the same way.
package blockdev

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/basaltos/basalt/contract"
)

// Uevent is the parsed KEY=VALUE content of a sysfs uevent file.
type Uevent map[string]string

// ParseUevent parses a uevent file: KEY=VALUE lines; other lines are ignored.
func ParseUevent(data []byte) Uevent {
	u := Uevent{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k != "" {
			u[k] = v
		}
	}
	return u
}

// Dev is one block device as sysfs describes it.
type Dev struct {
	// Name is the kernel name (vda2); the device node is /dev/<Name>.
	Name string
	// PartName is the GPT partition name, empty for whole disks and unnamed partitions.
	PartName string
	// PartN is the partition number and Disk the kernel name of the disk
	// it is on (vda); both zero for whole disks.
	PartN int
	Disk  string
}

// Path returns the device node path under devDir (normally /dev).
func (d Dev) Path(devDir string) string { return filepath.Join(devDir, d.Name) }

// List returns the block devices under sysDir (normally /sys), sorted by
// name, with the partitions of a basalt MBR disk named (nameMBR; the device
// nodes are in the dev directory beside sysDir).
func List(sysDir string) ([]Dev, error) {
	dir := filepath.Join(sysDir, "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Dev
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "uevent"))
		if err != nil {
			continue // device went away while listing
		}
		u := ParseUevent(data)
		name := u["DEVNAME"]
		if name == "" {
			name = e.Name()
		}
		d := Dev{Name: name, PartName: u["PARTNAME"]}
		if u["DEVTYPE"] == "partition" {
			d.PartN, _ = strconv.Atoi(u["PARTN"])
			// /sys/class/block/vda4 -> ../../devices/.../block/vda/vda4
			if real, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name())); err == nil {
				d.Disk = filepath.Base(filepath.Dir(real))
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	nameMBR(out, filepath.Join(filepath.Dir(filepath.Clean(sysDir)), "dev"))
	return out, nil
}

// nameMBR gives the unnamed partitions of every disk whose partition 1 is
// a FAT labelled contract.BootFSLabel their contract names by number.
func nameMBR(devs []Dev, devDir string) {
	basalt := map[string]bool{}
	for _, d := range devs {
		if d.PartN == 1 && d.PartName == "" && d.Disk != "" && FATLabel(d.Path(devDir)) == contract.BootFSLabel {
			basalt[d.Disk] = true
		}
	}
	for i := range devs {
		d := &devs[i]
		if basalt[d.Disk] && d.PartName == "" && d.PartN >= 1 && d.PartN <= len(contract.MBRPartitions) {
			d.PartName = contract.MBRPartitions[d.PartN-1]
		}
	}
}

// FATLabel returns the volume label in the boot sector of the FAT at path
// ("" when it is not a FAT or cannot be read).
func FATLabel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, 0); err != nil || b[510] != 0x55 || b[511] != 0xaa {
		return ""
	}
	switch {
	case string(b[82:87]) == "FAT32":
		return strings.TrimRight(string(b[71:82]), " ")
	case string(b[54:57]) == "FAT":
		return strings.TrimRight(string(b[43:54]), " ")
	}
	return ""
}

// Find returns the devices carrying each label among devs. A label carried by
// two devices is an error (two basalt disks attached: which one boots is
// ambiguous); missing labels are simply absent from the map.
func Find(devs []Dev, labels ...string) (map[string]Dev, error) {
	want := map[string]bool{}
	for _, l := range labels {
		want[l] = true
	}
	found := map[string]Dev{}
	for _, d := range devs {
		if !want[d.PartName] {
			continue
		}
		if prev, ok := found[d.PartName]; ok {
			return nil, fmt.Errorf("partition label %q is on both %s and %s", d.PartName, prev.Name, d.Name)
		}
		found[d.PartName] = d
	}
	return found, nil
}

// Wait polls sysDir until every label is found, ctx ends, or a label is
// ambiguous. The error for a timeout lists the block devices that were there.
func Wait(ctx context.Context, sysDir string, labels ...string) (map[string]Dev, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		devs, err := List(sysDir)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("list block devices: %w", err)
		}
		found, err := Find(devs, labels...)
		if err != nil {
			return nil, err
		}
		if len(found) == len(labels) {
			return found, nil
		}
		select {
		case <-ctx.Done():
			var missing []string
			for _, l := range labels {
				if _, ok := found[l]; !ok {
					missing = append(missing, l)
				}
			}
			return nil, fmt.Errorf("partitions %s not found (%w); block devices: %s",
				strings.Join(missing, ", "), context.Cause(ctx), describe(devs))
		case <-tick.C:
		}
	}
}

func describe(devs []Dev) string {
	if len(devs) == 0 {
		return "none (disk driver not loaded?)"
	}
	var s []string
	for _, d := range devs {
		if d.PartName != "" {
			s = append(s, d.Name+"="+d.PartName)
		} else {
			s = append(s, d.Name)
		}
	}
	return strings.Join(s, " ")
}
