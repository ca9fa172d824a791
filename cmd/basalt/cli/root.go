// Package cli is the basalt command line: one file per verb, each with its
// options struct; the work itself lives in image/ and qemu/.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/internal/errclass"
)

// globalOptions are the flags every verb has.
type globalOptions struct {
	verbose bool
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "basalt",
		Short: "Build immutable, A/B-updatable edge OS images from one YAML spec",
		Long: `basalt turns one declarative YAML spec into a bootable disk image per board
(and, with --sign-key, a signed A/B update bundle), without root, Docker or
loop devices. Debian inputs are verified, cached and pinned in basalt.lock.
Shell completion: basalt completion bash|zsh|fish|powershell --help.

Exit codes: 0 ok, 1 failure, 2 invalid input (spec, flags, files given),
3 missing dependency (a host tool, or an input --offline needs that the
cache lacks).`,
		Example: `  basalt boards                                   # boards, bootloaders, A/B mechanisms
  basalt build -o out                             # the embedded default spec (qemu-x86_64)
  basalt qemu out/basalt-demo-0.1.0-qemu-x86_64.img   # boot it; quit with Ctrl-A X
  basalt validate -f basalt.yaml                  # every error at once, with file:line
  basalt build -f basalt.yaml --board qemu-arm64 -o out -v
  basalt fetch -f basalt.yaml && basalt build -f basalt.yaml --offline
  basalt config add out/IMAGE.img site.yaml       # per-device config after the build
  basalt inspect out/IMAGE.img --ls a:/etc`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("basalt {{.Version}}\n")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "show each step with its duration")
	root.AddCommand(
		newBoardsCmd(g),
		newBuildCmd(g),
		newBundleCmd(g),
		newConfigCmd(g),
		newFetchCmd(g),
		newFlashCmd(g),
		newInspectCmd(g),
		newKubeconfigCmd(g),
		newKeygenCmd(g),
		newQemuCmd(g),
		newSchemaCmd(g),
		newServeCmd(g),
		newValidateCmd(g),
	)
	return root
}

// Run executes the command line and returns the process exit code.
func Run(args []string) int {
	// SIGINT, SIGTERM, SIGHUP (terminal closed) and SIGPIPE (the reader of
	// our output is gone, e.g. `basalt build | tee log` after Ctrl-C) cancel
	// the context: long steps stop, temp files are removed, and a QEMU
	// started by `basalt qemu` is stopped with us. Catching SIGPIPE also
	// turns a write to the broken pipe into an error instead of a kill.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "basalt: interrupted; nothing was left behind")
			return errclass.ExitFailure
		}
		fmt.Fprintln(os.Stderr, "basalt:", err)
	}
	// Exit codes (errclass): 2 invalid input, 3 missing dependency, 1 other
	// failures, so scripts can tell bad input from a failure of the machine.
	return errclass.Code(err)
}
