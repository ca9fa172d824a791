package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"reflect"
	"strings"
	"text/tabwriter"

	dsquashfs "github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/internal/errclass"
)

type inspectOptions struct {
	ls, extract, out string
}

func newInspectCmd(_ *globalOptions) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's partitions, slots, boot entries and config; list or extract slot files",
		Long: `Print the partition table, each root slot's version and kernel and whether
it verifies against its dm-verity root hash, the boot entries and A/B state, and the config drop-ins on the boot partition. With
--ls or --extract, list a directory of a slot's root or copy one file out.

  basalt inspect out/basalt-demo-0.1.0-qemu-x86_64.img
  basalt inspect IMAGE --ls a:/etc
  basalt inspect IMAGE --ls boot:/
  basalt inspect IMAGE --extract a:/etc/basalt-release -o release.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runInspect(cmd, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.ls, "ls", "", "list SLOT:PATH (a:/etc) or boot:PATH (boot:/loader)")
	f.StringVar(&o.extract, "extract", "", "extract the file SLOT:PATH or boot:PATH (needs -o)")
	f.StringVarP(&o.out, "output", "o", "", "file to extract to (- for stdout)")
	return cmd
}

func parseSlotPath(v string) (contract.Slot, string, error) {
	s, p, ok := strings.Cut(v, ":")
	if !ok || !contract.Slot(s).Valid() {
		return "", "", errclass.Invalid(fmt.Errorf("%q: want SLOT:PATH with slot a or b, or boot:PATH for the boot partition, e.g. a:/etc, boot:/", v))
	}
	return contract.Slot(s), imgfile.FSPath(p), nil
}

func runInspect(cmd *cobra.Command, o *inspectOptions, img string) error {
	im, err := imgfile.Open(img)
	if err != nil {
		return err
	}
	defer im.Close()
	w := cmd.OutOrStdout()
	switch {
	case o.ls != "":
		return inspectLs(w, im, o.ls)
	case o.extract != "":
		if o.out == "" {
			return errclass.Invalid(fmt.Errorf("--extract needs -o FILE (or -o - for stdout)"))
		}
		return inspectExtract(w, im, o.extract, o.out)
	}
	return inspectSummary(w, im)
}

func inspectSummary(w io.Writer, im *imgfile.Image) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: %s, %d bytes\n\n#\tNAME\tSTART\tSIZE\tTYPE\tGUID\n", im.File.Name(), im.Layout.Scheme, im.Layout.Size)
	for i, p := range im.Layout.Partitions {
		typ := p.Type
		if im.Layout.Scheme == disk.MBR {
			typ = fmt.Sprintf("0x%02x", p.MBRType)
			if p.Bootable {
				typ += " (active)"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", i+1, p.Name, p.Start, p.Size, typ, p.GUID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	boot, err := im.BootFS()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nslots:")
	mech := "" // the A/B mechanism named in a slot's release file
	for _, s := range []contract.Slot{contract.SlotA, contract.SlotB} {
		ver := "-"
		if b, err := boot.ReadFile(contract.SlotDir(s) + "/" + contract.BootVersionFile); err == nil {
			ver = strings.TrimSpace(string(b))
		}
		kernel := "-"
		fs, err := im.SlotFS(s)
		if err != nil {
			return err
		}
		if fs != nil {
			if b, err := fs.ReadFile(imgfile.FSPath(contract.ReleaseFile)); err == nil {
				if rel, err := contract.ParseRelease(b); err == nil {
					if rel.Kernel != "" {
						kernel = rel.Kernel
					}
					if mech == "" {
						mech = rel.Get(ab.ReleaseKey)
					}
				}
			}
		} else {
			ver += " (empty)"
		}
		fmt.Fprintf(w, "  %s: version %s, kernel %s\n", s, ver, kernel)
		if fs != nil {
			fmt.Fprintf(w, "     verity: %s\n", slotVerity(im, boot, s))
		}
		if uki, ok := slotUKI(boot, s); ok {
			fmt.Fprintf(w, "     uki: %s/%s %s\n", contract.SlotDir(s), contract.UKIFile, ukiSigners(uki))
		}
	}
	fmt.Fprintln(w, "\nboot:")
	if m, err := ab.For(mech); err == nil {
		st, err := m.State(boot, ab.Env{})
		if err != nil {
			fmt.Fprintf(w, "  A/B state (%s): %v\n", mech, err)
		} else {
			fmt.Fprintf(w, "  A/B state (%s): %s\n", mech, st)
		}
	}
	// A device that refused a slot at boot left why (the card read back).
	if fails, err := ab.ReadFailures(boot); err != nil {
		fmt.Fprintf(w, "  %s: %v\n", ab.FailureFile, err)
	} else {
		for _, f := range fails {
			fmt.Fprintf(w, "  slot %s failed at boot (%s): %s\n", f.Slot, ab.FailureFile, f.Reason)
		}
	}
	if ents, err := boot.ReadDir("loader/entries"); err == nil {
		for _, e := range ents {
			b, _ := boot.ReadFile("loader/entries/" + e.Name)
			fmt.Fprintf(w, "  entry %s:\n%s", e.Name, indent(string(b), "    "))
		}
	}
	if b, err := boot.ReadFile(contract.BootStateFile); err == nil {
		fmt.Fprintf(w, "  %s:\n%s", contract.BootStateFile, indent(string(b), "    "))
	}
	fmt.Fprintln(w, "\nconfig:")
	n := 0
	if b, err := im.ReadSlotFile(contract.SlotA, contract.BakedConfig); err == nil && b != nil {
		fmt.Fprintf(w, "  a:%s (baked from the spec, %d bytes)\n", contract.BakedConfig, len(b))
		n++
	}
	if b, err := boot.ReadFile(contract.BootConfig); err == nil {
		fmt.Fprintf(w, "  boot:/%s (%d bytes)\n", contract.BootConfig, len(b))
		n++
	}
	if ents, err := boot.ReadDir(contract.BootConfigDir); err == nil {
		for _, e := range ents {
			fmt.Fprintf(w, "  boot:/%s/%s (%d bytes)\n", contract.BootConfigDir, e.Name, e.Size)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  none (the device runs on defaults; add drop-ins with basalt config add)")
	}
	return nil
}

// bootPath returns the boot-partition path of "boot:PATH" ("" for the root).
func bootPath(v string) (string, bool) {
	p, ok := strings.CutPrefix(v, "boot:")
	if !ok {
		return "", false
	}
	return strings.Trim(path.Clean("/"+p), "/"), true
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

// slotPath opens the slot named by SLOT:PATH and returns its root and the path.
func slotPath(im *imgfile.Image, v string) (*dsquashfs.FileSystem, contract.Slot, string, error) {
	slot, p, err := parseSlotPath(v)
	if err != nil {
		return nil, "", "", err
	}
	fs, err := im.SlotFS(slot)
	if err == nil && fs == nil {
		err = errclass.Invalid(fmt.Errorf("slot %s is empty", slot))
	}
	return fs, slot, p, err
}

func inspectLs(w io.Writer, im *imgfile.Image, v string) error {
	if bp, ok := bootPath(v); ok {
		boot, err := im.BootFS()
		if err != nil {
			return err
		}
		ents, err := boot.ReadDir(bp)
		if err != nil {
			return errclass.Invalid(fmt.Errorf("boot partition: %w", err))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
		for _, e := range ents {
			kind := "file"
			if e.Dir {
				kind = "dir"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\n", kind, e.Size, e.Name)
		}
		return tw.Flush()
	}
	fs, slot, p, err := slotPath(im, v)
	if err != nil {
		return err
	}
	ents, err := fs.ReadDir(p)
	if err != nil {
		return errclass.Invalid(fmt.Errorf("slot %s: %s: %w", slot, p, err))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", squashfsMode(fi), fi.Size(), e.Name())
	}
	return tw.Flush()
}

// squashfsMode is fi's mode with the setuid, setgid and sticky bits, which
// go-diskfs' squashfs FileInfo drops from Mode() (v1.9.4: "not currently
// translated") but keeps in its unexported mode field: /tmp is drwxrwxrwt.
// TestSquashfsMode notices when the library changes.
func squashfsMode(fi fs.FileInfo) fs.FileMode {
	m := fi.Mode()
	v := reflect.ValueOf(fi)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if raw := v.Elem().FieldByName("mode"); raw.IsValid() && raw.CanUint() {
			bits := raw.Uint()
			for _, b := range []struct {
				unix uint64
				mode fs.FileMode
			}{{0o4000, fs.ModeSetuid}, {0o2000, fs.ModeSetgid}, {0o1000, fs.ModeSticky}} {
				if bits&b.unix != 0 {
					m |= b.mode
				}
			}
		}
	}
	return m
}

func inspectExtract(w io.Writer, im *imgfile.Image, v, out string) error {
	var b []byte
	if bp, ok := bootPath(v); ok {
		boot, err := im.BootFS()
		if err != nil {
			return err
		}
		if b, err = boot.ReadFile(bp); err != nil {
			return errclass.Invalid(fmt.Errorf("boot partition: %w", err))
		}
	} else {
		fs, slot, p, err := slotPath(im, v)
		if err != nil {
			return err
		}
		if b, err = fs.ReadFile(p); err != nil {
			return errclass.Invalid(fmt.Errorf("slot %s: %s: %w", slot, p, err))
		}
	}
	if out == "-" {
		_, err := w.Write(b)
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
