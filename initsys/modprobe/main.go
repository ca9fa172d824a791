package modprobe

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/modules"
)

const usage = "usage: modprobe [-q] [-v] [-n] [-b] [-s] [-d DIR] MODULE [PARAM=VALUE...]\n       modprobe -a [-q] [-v] [-n] MODULE..."

// Options is a parsed modprobe command line.
type Options struct {
	Quiet, Verbose, DryRun, All bool
	// Root prefixes the modules directory (-d ROOT, as modprobe's
	// --dirname: ROOT/lib/modules/<release>).
	Root   string
	Names  []string
	Params string
}

// ParseArgs parses modprobe's arguments (without argv[0]). -b and -s are
// accepted and change nothing here; combined short flags (-qa) work.
func ParseArgs(args []string) (Options, error) {
	var o Options
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		if len(a) > 2 && a[1] != '-' { // -qa -> -q -a
			var split []string
			for _, c := range a[1:] {
				split = append(split, "-"+string(c))
			}
			args = append(split, args...)
			continue
		}
		switch a {
		case "-q", "--quiet":
			o.Quiet = true
		case "-v", "--verbose":
			o.Verbose = true
		case "-n", "--dry-run", "--show":
			o.DryRun = true
		case "-a", "--all":
			o.All = true
		case "-b", "--use-blacklist", "-s", "--syslog":
		case "-d", "--dirname":
			if len(args) == 0 {
				return o, fmt.Errorf("%s needs a directory\n%s", a, usage)
			}
			o.Root, args = args[0], args[1:]
		default:
			return o, fmt.Errorf("unsupported option %s\n%s", a, usage)
		}
	}
	if len(args) == 0 {
		return o, fmt.Errorf("no module named\n%s", usage)
	}
	if o.All {
		o.Names = args
	} else {
		o.Names, o.Params = args[:1], strings.Join(args[1:], " ")
	}
	return o, nil
}

// Run executes a modprobe command line: errors go to stderr unless -q
// (the exit code still says), -v / -n print "insmod FILE" per module.
// load is modules.LoadModule on the device (tests pass a fake).
func Run(args []string, stdout, stderr io.Writer, load func(file, params string) error) int {
	o, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "modprobe:", err)
		return 1
	}
	dir, err := DefaultDir()
	if err == nil && o.Root != "" {
		dir = filepath.Join(o.Root, strings.TrimPrefix(dir, "/"))
	}
	var ix *Index
	if err == nil {
		ix, err = Open(dir)
	}
	if err != nil {
		if !o.Quiet {
			fmt.Fprintln(stderr, "modprobe:", err)
		}
		return 1
	}
	return ix.run(o, stdout, stderr, load)
}

func (ix *Index) run(o Options, stdout, stderr io.Writer, load func(file, params string) error) int {
	code := 0
	for _, name := range o.Names {
		named, err := ix.Resolve(name)
		var plan []modules.Module
		if err == nil {
			plan, err = ix.Plan(named)
		}
		if err != nil {
			if !o.Quiet {
				fmt.Fprintln(stderr, "modprobe:", err)
			}
			code = 1
			continue
		}
		for _, m := range plan {
			params := ""
			if slices.Contains(named, contract.ModuleName(m.Path)) {
				params = o.Params // parameters go to the named module, not its deps
			}
			file := filepath.Join(ix.Dir, m.Path)
			if o.Verbose || o.DryRun {
				fmt.Fprintf(stdout, "insmod %s %s\n", file, params)
			}
			if o.DryRun {
				continue
			}
			if err := load(file, params); err != nil {
				if !o.Quiet {
					fmt.Fprintln(stderr, "modprobe:", err)
				}
				code = 1
				break
			}
		}
	}
	return code
}
