package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/debian"
)

type fetchOptions struct {
	boards     []string
	offline    bool
	updateLock bool
	lock       string
	mirror     string
	cacheDir   string
}

func newFetchCmd(_ *globalOptions) *cobra.Command {
	o := &fetchOptions{}
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download and verify the Debian packages of boards into the cache, pinned in basalt.lock",
		Long: `Resolve every Debian input of the boards (kernel, boot-file packages, and
u-boot-qemu for boards whose QEMU firmware comes from it) against the signed
mirror indexes, download them into the cache (sha256-verified) and record them
in the lock file. With a lock file, the pinned versions are fetched.

The mirror is --mirror, else $BASALT_DEBIAN_MIRROR, else the host's apt sources;
the security suite comes from $BASALT_DEBIAN_SECURITY_MIRROR (none: skip it)
or the host's sources.

  basalt fetch --board qemu-x86_64
  basalt fetch --update-lock
  BASALT_DEBIAN_MIRROR=http://deb.debian.org/debian basalt fetch --offline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFetch(cmd, o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.boards, "board", nil, "board to fetch for (repeatable; default: all)")
	f.BoolVar(&o.offline, "offline", false, "use only the cache; fail naming what is missing")
	f.BoolVar(&o.updateLock, "update-lock", false, "re-resolve the newest versions and rewrite the lock")
	f.StringVar(&o.lock, "lock", cache.LockName, "lock file")
	f.StringVar(&o.mirror, "mirror", "", "Debian mirror URL")
	f.StringVar(&o.cacheDir, "cache-dir", "", "cache directory (default $BASALT_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("board", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return boards.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runFetch(cmd *cobra.Command, o *fetchOptions) error {
	names := o.boards
	if len(names) == 0 {
		names = boards.Names()
	}
	var bs []*boards.Board
	for _, n := range names {
		b, err := boards.Get(n)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		bs = append(bs, b)
	}
	mirrors, err := debian.FindMirrors(o.mirror, "/")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c, err := cache.Open(o.cacheDir)
	if err != nil {
		return err
	}
	c.Offline = o.offline
	c.Progress = cache.TermProgress(os.Stderr)
	lock, err := cache.ReadLock(o.lock)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	clients := map[boards.Arch]*debian.Client{}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BOARD\tPACKAGE\tVERSION\tARCH\tSUITE\tSIZE\tSHA256")
	for _, b := range bs {
		cl := clients[b.Arch]
		if cl == nil {
			cl = &debian.Client{Sources: mirrors.Sources(debian.DefaultRelease), Arch: string(b.Arch), Cache: c}
			clients[b.Arch] = cl
		}
		got, err := cl.FetchInputs(cmd.Context(), lock, b.Name, debian.BoardInputs(b), o.updateLock)
		if err != nil {
			return err
		}
		for _, f := range got {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.Name, f.Package.Name, f.Version, f.Package.Arch, f.Source.Suite, f.Size, f.SHA256)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return lock.Write(o.lock)
}
