package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/flash"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/internal/errclass"
)

type flashOptions struct {
	list, yes bool
	configs   []string
	batch     flash.Batch
	csv, name string
}

func newFlashCmd(_ *globalOptions) *cobra.Command {
	o := &flashOptions{}
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE...",
		Short: "Write an image onto SD cards or disks, verified, with a per-card config drop-in",
		Long: `Write IMAGE onto each DEVICE: a whole block device that is not mounted, not in
use and not this host's system disk (a regular file or a loop device works too).
It asks before writing unless --yes, shows MB/s and the time left, turns the
image's holes into zeroing, writes the partition table last, fsyncs, reads the
card back and checks its sha256, and says how long it took.

--config FILE and --set key=value add a drop-in to basalt/config.d on the card
(after the verify). For a batch, give several DEVICEs: {n} in a --set value is
the card's number (from --first), and --csv FILE gives one row of keys per card.

  basalt flash --list
  basalt flash out/shopfloor-1.0.0-rpi4.img /dev/sdb
  basalt flash IMAGE /dev/sdb --yes --set hostname=line-07
  basalt flash IMAGE /dev/sdb /dev/sdc --set hostname=store-{n} --first 42
  basalt flash IMAGE /dev/sdb /dev/sdc --csv cards.csv   # header: hostname,cluster.labels.store`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.list {
				return flashList(cmd.OutOrStdout())
			}
			if len(args) < 2 {
				return errclass.Invalidf("flash needs IMAGE and at least one DEVICE (or --list)")
			}
			return runFlash(cmd, o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.list, "list", false, "list the disks of this host: size, model, removable, and why flash would refuse one")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask before writing")
	f.StringArrayVar(&o.configs, "config", nil, "device-config drop-in FILE to add to each card (repeatable)")
	f.StringArrayVar(&o.batch.Sets, "set", nil, "key=value for a drop-in on each card; {n} is the card's number (repeatable)")
	f.IntVar(&o.batch.First, "first", 1, "number of the first card of a batch ({n})")
	f.StringVar(&o.csv, "csv", "", "CSV file: a header row of keys, one row of values per card")
	f.StringVar(&o.name, "name", "90-flash.yaml", "file name of the --set/--csv drop-in in basalt/config.d")
	return cmd
}

func flashList(w io.Writer) error {
	cs, err := flash.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSIZE\tREMOVABLE\tMODEL\tFLASH")
	for _, c := range cs {
		ok := "yes"
		if c.Why != "" {
			ok = "no: " + c.Why
		}
		fmt.Fprintf(tw, "%s\t%.1f GB\t%v\t%s\t%s\n", c.Path, float64(c.Size)/1e9, c.Removable, c.Model, ok)
	}
	return tw.Flush()
}

func runFlash(cmd *cobra.Command, o *flashOptions, img string, devs []string) error {
	stderr := cmd.ErrOrStderr()
	if _, err := imgfile.BootPartition(img); err != nil {
		return errclass.Invalidf("%s is not a basalt image: %w", img, err)
	}
	if o.csv != "" {
		if err := o.batch.ReadCSV(o.csv); err != nil {
			return errclass.Invalid(err)
		}
		if o.batch.Cards() < len(devs) {
			return errclass.Invalidf("%s has rows for %d cards, %d devices given", o.csv, o.batch.Cards(), len(devs))
		}
	}
	var extra [][]byte // the --config drop-ins, checked before any write
	for _, c := range o.configs {
		if _, err := parseFiles(stderr, c); err != nil {
			return err
		}
		b, err := os.ReadFile(c)
		if err != nil {
			return err
		}
		extra = append(extra, b)
	}
	var targets []flash.Target
	var cards [][]byte
	for i, d := range devs {
		t, err := flash.Check(d)
		if err != nil {
			return errclass.Invalid(err)
		}
		targets = append(targets, t)
		sets, err := o.batch.Card(i)
		if err != nil {
			return errclass.Invalid(err)
		}
		var doc []byte
		if len(sets) > 0 {
			if doc, err = flash.DropIn(o.name, sets); err != nil {
				return errclass.Invalid(err)
			}
		}
		cards = append(cards, doc)
	}
	if !o.yes {
		var b strings.Builder
		for _, t := range targets {
			fmt.Fprintf(&b, "  %s (%.1f GB)\n", t.Path, float64(t.Size)/1e9)
		}
		fmt.Fprintf(stderr, "basalt flash: everything on\n%swill be replaced by %s. Continue? [y/N] ", b.String(), img)
		line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("not confirmed: nothing written")
		}
	}
	for i, t := range targets {
		if err := flashOne(cmd, img, t, o, extra, cards[i]); err != nil {
			return fmt.Errorf("card %d (%s): %w", i+1, t.Path, err)
		}
	}
	return nil
}

func flashOne(cmd *cobra.Command, img string, t flash.Target, o *flashOptions, extra [][]byte, card []byte) error {
	stderr := cmd.ErrOrStderr()
	start := time.Now()
	var opt flash.Options
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opt.Progress = func(done, total int64) {
			s := time.Since(start).Seconds()
			rate := float64(done) / s / 1e6
			eta := time.Duration(float64(total-done) / (float64(done) / s) * float64(time.Second)).Round(time.Second)
			fmt.Fprintf(stderr, "\r%s: %4d / %d MiB  %6.1f MB/s  ETA %s   ", t.Path, done>>20, total>>20, rate, eta)
		}
	}
	r, err := flash.Write(cmd.Context(), img, t, opt)
	if opt.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	var added []string
	if len(extra) > 0 || card != nil {
		p, err := imgfile.BootPartition(t.Path)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(t.Path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		for i, b := range extra {
			name := contract.BootConfigDir + "/" + baseName(o.configs[i])
			if err == nil {
				err = fat.AddFile(f, p.Start, p.Size, name, b, epoch())
				added = append(added, name)
			}
		}
		if card != nil && err == nil {
			name := contract.BootConfigDir + "/" + o.name
			err = fat.AddFile(f, p.Start, p.Size, name, card, epoch())
			added = append(added, name)
		}
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("drop-in: %w", err)
		}
	}
	mbps := float64(r.Size) / r.Write.Seconds() / 1e6
	fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s (%d MiB, %d MiB of data, %d MiB zeroed) in %s (%.1f MB/s), verified sha256 %s in %s; total %s\n",
		t.Path, img, r.Size>>20, r.Written>>20, r.Zeroed>>20, r.Write.Round(time.Millisecond), mbps, r.SHA256, r.Verify.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, a := range added {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: added %s\n", t.Path, a)
	}
	return nil
}

// baseName is the drop-in name of a --config file.
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
