package cli

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/internal/errclass"
)

type buildOptions struct {
	file       string
	boards     []string
	out        string
	format     string
	offline    bool
	updateLock bool
	cacheDir   string
	signKey    string
	bundle     bool
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a bootable disk image per board from a spec",
		Long: `Build NAME-VERSION-BOARD.img (or .qcow2) and NAME-VERSION-BOARD.manifest.json
in the output directory for each board of the spec. Without -f, the embedded
default spec (board qemu-x86_64) is built.

Kernels and bootloaders come from Debian packages (verified, cached, pinned in
basalt.lock next to the spec) unless the spec names local files. Times come
from $SOURCE_DATE_EPOCH, else a fixed epoch (2024-01-01): the same spec and
inputs give byte-identical images. On any error nothing is left in -o.

  basalt build
  basalt build -f basalt.yaml --board qemu-arm64 -o out/
  basalt build -f basalt.yaml --format qcow2 --offline -v
  basalt build -f basalt.yaml --sign-key keys/basalt-sign.key   # + the signed update bundle

qcow2 is written in Go (no qemu-img needed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBuild(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "spec file (default: the embedded default spec)")
	f.StringArrayVar(&o.boards, "board", nil, "board to build (repeatable; default: every board of the spec)")
	f.StringVarP(&o.out, "output", "o", "out", "output directory")
	f.StringVar(&o.format, "format", "raw", "image format: raw or qcow2")
	f.BoolVar(&o.offline, "offline", false, "use only the cache for Debian inputs")
	f.BoolVar(&o.updateLock, "update-lock", false, "re-resolve Debian inputs to their newest versions and rewrite basalt.lock")
	f.StringVar(&o.signKey, "sign-key", os.Getenv("BASALT_SIGN_KEY"), "also write NAME-VERSION-BOARD.bundle signed with this private key (basalt keygen; default $BASALT_SIGN_KEY)")
	f.BoolVar(&o.bundle, "bundle", false, "also write the update bundle, unsigned (sign it later with basalt bundle sign)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "cache directory (default $BASALT_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("board", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return boards.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"raw", "qcow2"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runBuild(cmd *cobra.Command, g *globalOptions, o *buildOptions) error {
	s, err := loadSpec(cmd, o.file)
	if err != nil {
		return err
	}
	opt := build.Options{
		OutDir: o.out, Boards: o.boards, Format: build.Format(o.format),
		Offline: o.offline, UpdateLock: o.updateLock, CacheDir: o.cacheDir, Bundle: o.bundle,
	}
	if o.signKey != "" {
		if opt.SignKey, err = loadPrivateKey(o.signKey); err != nil {
			return err
		}
	}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		if opt.Epoch, err = strconv.ParseInt(v, 10, 64); err != nil || opt.Epoch <= 0 {
			return errclass.Invalid(fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a positive number of seconds", v))
		}
	}
	stderr := cmd.ErrOrStderr()
	tty := false
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
		opt.Progress = cache.TermProgress(f)
	}
	switch {
	case g.verbose:
		opt.Step = func(name string, d time.Duration) {
			fmt.Fprintf(stderr, "%-40s %8.2fs\n", name, d.Seconds())
		}
	case tty:
		opt.Begin = func(name string) { fmt.Fprintf(stderr, "\r\033[K%s ...", name) }
		opt.Step = func(name string, _ time.Duration) {
			fmt.Fprintf(stderr, "\r\033[K%s done", name)
		}
	}
	if tty && g.verbose {
		opt.Begin = func(name string) { fmt.Fprintf(stderr, "%s ...\n", name) }
	}
	opt.Warn = func(msg string) {
		if tty && !g.verbose {
			fmt.Fprint(stderr, "\r\033[K")
		}
		fmt.Fprintf(stderr, "warning: %s\n", msg)
	}
	arts, err := build.Build(cmd.Context(), s, opt)
	if tty && !g.verbose {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	for _, a := range arts {
		fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  (%d bytes, manifest %s)\n", a.SHA256, a.Image, a.Size, a.Manifest)
		if a.Bundle != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s\n", a.Bundle)
		}
	}
	return nil
}
