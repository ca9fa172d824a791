package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/cache"
)

type fetchOptions struct {
	file       string
	boards     []string
	offline    bool
	updateLock bool
	mirror     string
	cacheDir   string
}

func newFetchCmd(_ *globalOptions) *cobra.Command {
	o := &fetchOptions{}
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download and verify a spec's Debian packages into the cache, pinned in basalt.lock",
		Long: `Resolve the Debian inputs of a spec's boards, the same list ` + "`basalt build`" + `
resolves (kernel, boot-file packages, busybox-static when the image gets a
shell, tzdata when it carries time zones), against the signed mirror
indexes, download them into the cache (sha256-verified) and pin them in the
lock: basalt.lock next to the spec, or for the embedded default spec (no -f)
a lock in the cache. Pinned versions are fetched as pinned. Afterwards
` + "`basalt build --offline`" + ` needs no network.

The mirror is --mirror, else the spec's debian.mirror, else
$BASALT_DEBIAN_MIRROR, else the host's apt sources; the security suite comes
from $BASALT_DEBIAN_SECURITY_MIRROR (none: skip it) or the host's sources.

  basalt fetch
  basalt fetch -f examples/retail-store/basalt.yaml --board qemu-x86_64
  basalt fetch -f basalt.yaml --update-lock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFetch(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "spec file (default: the embedded default spec)")
	f.StringArrayVar(&o.boards, "board", nil, "board to fetch for (repeatable; default: every board of the spec)")
	f.BoolVar(&o.offline, "offline", false, "use only the cache; fail naming what is missing")
	f.BoolVar(&o.updateLock, "update-lock", false, "re-resolve the newest versions and rewrite the lock")
	f.StringVar(&o.mirror, "mirror", "", "Debian mirror URL (overrides the spec's debian.mirror)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "cache directory (default $BASALT_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("board", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return boards.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runFetch(cmd *cobra.Command, o *fetchOptions) error {
	s, err := loadSpec(cmd, o.file)
	if err != nil {
		return err
	}
	if o.mirror != "" {
		s.Debian.Mirror = o.mirror
	}
	got, other, err := build.Fetch(cmd.Context(), s, build.Options{
		Boards: o.boards, Offline: o.offline, UpdateLock: o.updateLock, CacheDir: o.cacheDir,
		Progress: cache.TermProgress(os.Stderr),
	})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BOARD\tPACKAGE\tVERSION\tARCH\tSUITE\tSIZE\tSHA256")
	for _, f := range got {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f.Board, f.Package.Name, f.Version, f.Package.Arch, f.Source.Suite, f.Size, f.SHA256)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(other) == 0 {
		return nil
	}
	// k3s release files and container images.
	w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nBOARD INPUT\tKIND\tVERSION\tSOURCE\tSHA256")
	for _, in := range other {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.Kind, in.Version, in.Source, in.SHA256)
	}
	return w.Flush()
}
