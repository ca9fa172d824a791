package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/errclass"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Validate, add, show and seed device config drop-ins",
		Long: `Device config drop-ins (see docs/config.md): validate files, add one to an
image or a flashed card without mounting, show the effective config, or make
a NoCloud seed image.

  basalt config validate site.yaml
  basalt config add edge.img site.yaml --name 50-site.yaml
  basalt config show edge.img
  basalt config seed ./seed -o seed.img`,
	}
	c.AddCommand(newConfigValidateCmd(), newConfigAddCmd(), newConfigShowCmd(), newConfigSeedCmd(), newConfigSignCmd(), newConfigSchemaCmd())
	return c
}

// parseFiles parses and validates files, printing every issue to w; it
// returns errclass.ErrInvalid when any file is invalid.
func parseFiles(w io.Writer, files ...string) ([]*config.Document, error) {
	var docs []*config.Document
	bad := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, errclass.Invalidf("%w", err)
		}
		d, warns, err := config.Parse(f, b)
		for _, x := range warns {
			fmt.Fprintln(w, "warning:", x.Error())
		}
		if err != nil {
			fmt.Fprintln(w, err)
			bad++
			continue
		}
		docs = append(docs, d)
	}
	if bad > 0 {
		return nil, errclass.Invalidf("%d of %d files", bad, len(files))
	}
	return docs, checkZones(w, docs)
}

func newConfigValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check drop-ins with the device's validator (exit 2 when invalid)",
		Long: `Check device config files (basalt documents or #cloud-config user-data)
with the same parser and validator the device uses. Errors print as
FILE:LINE: .yaml.path: reason; unsupported cloud-init keys print as warnings.

  basalt config validate basalt/config.d/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			docs, err := parseFiles(cmd.ErrOrStderr(), args...)
			if err != nil {
				return err
			}
			if errs := config.Merge(docs...).Validate(); len(errs) > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), errs)
				return errclass.Invalidf("merged config")
			}
			for _, d := range docs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", d.File)
				if tz := d.Config.Timezone; tz != nil && !contract.IsUTC(*tz) {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s:%d: timezone %s needs its zone file in the image: the spec's config.timezone or timezones: list it\n", d.File, d.Line(".timezone"), *tz)
				}
			}
			return nil
		},
	}
}

// checkZones refuses a time zone that does not exist (Go's copy of the tz
// database, embedded through image/spec): the device could never set it.
func checkZones(w io.Writer, docs []*config.Document) error {
	bad := 0
	for _, d := range docs {
		if tz := d.Config.Timezone; tz != nil && *tz != "" && !contract.IsUTC(*tz) {
			if _, err := time.LoadLocation(*tz); err != nil {
				fmt.Fprintf(w, "%s:%d: .timezone: unknown time zone %q (want an IANA name like Europe/Paris or UTC)\n", d.File, d.Line(".timezone"), *tz)
				bad++
			}
		}
	}
	if bad > 0 {
		return errclass.Invalidf("%d unknown time zone(s)", bad)
	}
	return nil
}

var dropInName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.yaml$`)

type configAddOptions struct{ name, signKey string }

func newConfigAddCmd() *cobra.Command {
	o := &configAddOptions{}
	c := &cobra.Command{
		Use:   "add IMAGE FILE",
		Short: "Write a drop-in into basalt/config.d/ of an image or card, without mounting",
		Long: `Validate FILE and write it as basalt/config.d/NAME into the boot partition
(GPT name basalt-boot) of IMAGE, a disk image file or a flashed card's device
node, without mounting and, for image files, without root. Invalid files are
refused. A file of the same name is replaced. With --sign-key (images built
with configTrust: signed), NAME.sig is written next to it.

  basalt config add edge.img site.yaml --name 50-site.yaml
  basalt config add /dev/sdb site.yaml --sign-key keys/basalt-sign.key`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, file := args[0], args[1]
			name := o.name
			if name == "" {
				name = filepath.Base(file)
			}
			if !dropInName.MatchString(name) {
				return errclass.Invalidf("drop-in name %q: want NN-name.yaml (letters, digits, '.', '_', '-')", name)
			}
			if _, err := parseFiles(cmd.ErrOrStderr(), file); err != nil {
				return err
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var sig []byte
			if o.signKey != "" {
				key, err := readSignKey(o.signKey)
				if err != nil {
					return err
				}
				sig = config.Sign(key, data)
			}
			p, err := imgfile.BootPartition(img)
			if err != nil {
				return errclass.Invalidf("%s is not a basalt disk image or card: %w", img, err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			dst := contract.BootConfigDir + "/" + name
			err = fat.AddFile(f, p.Start, p.Size, dst, data, epoch())
			if err == nil && sig != nil {
				err = fat.AddFile(f, p.Start, p.Size, dst+config.SigSuffix, sig, epoch())
			}
			if serr := f.Sync(); err == nil {
				err = serr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", img, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s\n", img, dst)
			// The image's bytes changed: so do its sums in the manifest.
			updated, err := build.Rehash(cmd.Context(), img)
			if err != nil {
				return fmt.Errorf("%s: the image changed but its manifest could not be updated: %w", build.ManifestPath(img), err)
			}
			if updated {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: updated the image and partition sha256\n", build.ManifestPath(img))
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.name, "name", "", "file name in basalt/config.d/ (default: FILE's base name)")
	c.Flags().StringVar(&o.signKey, "sign-key", "", "also write NAME.sig, signed with this ed25519 private key (configTrust: signed)")
	return c
}

// epoch is SOURCE_DATE_EPOCH when set, else now.
func epoch() int64 {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return time.Now().Unix()
}

type configShowOptions struct{ baked string }

func newConfigShowCmd() *cobra.Command {
	o := &configShowOptions{}
	c := &cobra.Command{
		Use:   "show IMAGE",
		Short: "Print the effective config of an image's boot partition, with the source of each key",
		Long: `Merge the baked default (the spec's config: section, read from slot a's
root, or --baked FILE) and the boot partition's basalt/config.yaml and
basalt/config.d/*.yaml of IMAGE as the device would, and print the result
with secrets redacted; each line ends with the file and line that set it.

  basalt config show edge.img
  basalt config show edge.img --baked spec-config.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			docs, err := bakedConfig(cmd.ErrOrStderr(), args[0], o.baked)
			if err != nil {
				return err
			}
			p, err := imgfile.BootPartition(args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fsys, err := fat.Open(f, p.Start, p.Size)
			if err != nil {
				return fmt.Errorf("%s: boot partition: %w", args[0], err)
			}
			names := []string{contract.BootConfig}
			ents, err := fsys.ReadDir(contract.BootConfigDir)
			if err == nil {
				var ds []string
				for _, e := range ents {
					if !e.Dir && strings.HasSuffix(e.Name, ".yaml") {
						ds = append(ds, path.Join(contract.BootConfigDir, e.Name))
					}
				}
				sort.Strings(ds)
				names = append(names, ds...)
			}
			bad := 0
			for _, n := range names {
				b, err := fsys.ReadFile(n)
				if err != nil {
					continue // absent
				}
				d, warns, err := config.Parse(n, b)
				for _, x := range warns {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", x.Error())
				}
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				docs = append(docs, d)
			}
			m := config.Merge(docs...)
			if err := printWithOrigins(cmd.OutOrStdout(), m); err != nil {
				return err
			}
			if bad > 0 {
				return errclass.Invalidf("%d invalid drop-ins (the device boots with its last good config)", bad)
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.baked, "baked", "", "the baked default config (the spec's config: section as a document)")
	return c
}

// bakedConfig returns the baked default the device merges first: the file
// given, or the spec's config: section that the build put in slot a's root.
func bakedConfig(stderr io.Writer, img, file string) ([]*config.Document, error) {
	if file != "" {
		return parseFiles(stderr, file)
	}
	im, err := imgfile.Open(img)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	if _, err := im.Part(contract.PartRootA); err != nil {
		return nil, nil // a bare boot partition (no slots): nothing baked to show
	}
	b, err := im.ReadSlotFile(contract.SlotA, contract.BakedConfig)
	if err != nil || b == nil {
		return nil, err
	}
	d, _, err := config.Parse("baked:"+contract.BakedConfig, b)
	if err != nil {
		return nil, fmt.Errorf("%s: slot a: %w", img, err)
	}
	return []*config.Document{d}, nil
}

// printWithOrigins prints the redacted config as YAML with "# FILE:LINE"
// comments on each key that has an origin.
func printWithOrigins(w io.Writer, m *config.Merged) error {
	var n yaml.Node
	if err := n.Encode(m.Config.Redacted()); err != nil {
		return err
	}
	annotate(&n, "", m)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func annotate(n *yaml.Node, p string, m *config.Merged) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			annotate(c, p, m)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := p + "." + k.Value
			if !plainKey.MatchString(k.Value) {
				kp = p + "[" + strconv.Quote(k.Value) + "]"
			}
			if o, ok := m.Origins[kp]; ok {
				k.LineComment = o.String()
			}
			annotate(v, kp, m)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", p, i)
			if o, ok := m.Origins[ip]; ok && c.Kind == yaml.ScalarNode {
				c.LineComment = o.String()
			}
			annotate(c, ip, m)
		}
	}
}

type configSeedOptions struct{ out, signKey string }

// seedSize is the NoCloud seed image size: the smallest comfortable FAT32.
const seedSize = 40 << 20

func newConfigSeedCmd() *cobra.Command {
	o := &configSeedOptions{}
	c := &cobra.Command{
		Use:   "seed DIR -o seed.img",
		Short: "Make a NoCloud seed image (FAT labelled CIDATA with user-data, meta-data)",
		Long: `Make a NoCloud seed image from DIR/user-data and DIR/meta-data (a minimal
meta-data is written when absent). user-data is validated first. Attach it as a
second drive in QEMU:

  basalt config seed ./seed -o seed.img
  qemu-system-x86_64 ... -drive file=seed.img,format=raw,if=virtio`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return errclass.Invalidf("-o seed.img is required")
			}
			dir := args[0]
			ud := filepath.Join(dir, "user-data")
			if _, err := parseFiles(cmd.ErrOrStderr(), ud); err != nil {
				return err
			}
			userData, err := os.ReadFile(ud)
			if err != nil {
				return err
			}
			metaData, err := os.ReadFile(filepath.Join(dir, "meta-data"))
			if errors.Is(err, os.ErrNotExist) {
				metaData = []byte("instance-id: basalt-seed\n")
			} else if err != nil {
				return err
			}
			if _, _, _, err := config.ParseMetaData(filepath.Join(dir, "meta-data"), metaData); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return errclass.Invalidf("meta-data")
			}
			t := tree.New(epoch())
			if err := t.AddBytes("user-data", 0o644, userData); err != nil {
				return err
			}
			if err := t.AddBytes("meta-data", 0o644, metaData); err != nil {
				return err
			}
			if o.signKey != "" {
				key, err := readSignKey(o.signKey)
				if err != nil {
					return err
				}
				if err := t.AddBytes("user-data"+config.SigSuffix, 0o644, config.Sign(key, userData)); err != nil {
					return err
				}
				if err := t.AddBytes("meta-data"+config.SigSuffix, 0o644, config.Sign(key, metaData)); err != nil {
					return err
				}
			}
			if err := writeSeed(o.out, t); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: NoCloud seed (label %s: user-data, meta-data); boot with it: basalt qemu IMAGE --seed %s\n", o.out, devconfigSeedLabel, o.out)
			return nil
		},
	}
	c.Flags().StringVarP(&o.out, "output", "o", "", "seed image to write")
	c.Flags().StringVar(&o.signKey, "sign-key", "", "also write user-data.sig and meta-data.sig, signed with this ed25519 private key (configTrust: signed)")
	return c
}

func writeSeed(out string, t *tree.Tree) error {
	return writeAtomic(out, 0o644, func(f *os.File) error {
		if err := f.Truncate(seedSize); err != nil {
			return err
		}
		return fat.Write(f, seedSize, t, fat.Options{Label: devconfigSeedLabel, VolumeID: 0xC1DA7A00})
	})
}

// writeAtomic writes path through fill on a temp file next to it, then a
// rename: no half-written file is left behind.
func writeAtomic(path string, mode os.FileMode, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = fill(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// devconfigSeedLabel is the NoCloud volume label.
const devconfigSeedLabel = "CIDATA"
