// Package mountcmd is basalt-init answering as mount and umount (argv[0]
// basename; the builder links contract.MountPath and UmountPath to the
// init): kubelet execs them for every pod volume (tmpfs for secrets and
// service-account tokens, bind mounts, remounts read-only) and the root has
// no util-linux. It covers the command lines kubelet's mount-utils writes,
// `mount [-t TYPE] [-o OPTS] SOURCE TARGET`, `--bind`/`--rbind`/`--move`,
// `--make-[r]shared|slave|private|unbindable`, and `umount [-l] [-f] TARGET`,
// with util-linux's messages and exit codes where callers read them
// (kubelet probes `umount` of a directory that is not mounted for "not
// mounted").
package mountcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Exit codes of util-linux mount(8) and umount(8).
const (
	exitUsage   = 1
	exitFailure = 32
)

// Sys is the mount system calls (tests record them).
type Sys struct {
	Mount   func(source, target, fstype string, flags uintptr, data string) error
	Unmount func(target string, flags int) error
	// Mounts is /proc/self/mounts, for `mount` without arguments.
	Mounts string
}

// Linux is the real system calls.
var Linux = Sys{Mount: unix.Mount, Unmount: unix.Unmount, Mounts: "/proc/self/mounts"}

// Call is one mount(2) call of a plan.
type Call struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

// flagOpts are the -o options that are mount flags (set or cleared);
// everything else goes to the filesystem as data.
var flagOpts = map[string]struct {
	set   uintptr
	clear bool
}{
	"ro": {unix.MS_RDONLY, false}, "rw": {unix.MS_RDONLY, true},
	"nosuid": {unix.MS_NOSUID, false}, "suid": {unix.MS_NOSUID, true},
	"nodev": {unix.MS_NODEV, false}, "dev": {unix.MS_NODEV, true},
	"noexec": {unix.MS_NOEXEC, false}, "exec": {unix.MS_NOEXEC, true},
	"sync": {unix.MS_SYNCHRONOUS, false}, "async": {unix.MS_SYNCHRONOUS, true},
	"noatime": {unix.MS_NOATIME, false}, "atime": {unix.MS_NOATIME, true},
	"nodiratime": {unix.MS_NODIRATIME, false}, "diratime": {unix.MS_NODIRATIME, true},
	"relatime": {unix.MS_RELATIME, false}, "norelatime": {unix.MS_RELATIME, true},
	"strictatime": {unix.MS_STRICTATIME, false},
	"remount":     {unix.MS_REMOUNT, false},
	"bind":        {unix.MS_BIND, false}, "rbind": {unix.MS_BIND | unix.MS_REC, false},
	"move":     {unix.MS_MOVE, false},
	"defaults": {0, false}, "auto": {0, false}, "noauto": {0, false}, "nofail": {0, false}, "_netdev": {0, false},
}

// propagation options: a separate mount(2) call each, after the mount.
var propagation = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// errUsage marks a command line mount(8) would refuse (exit 1).
var errUsage = errors.New("usage")

// Plan parses mount's arguments (without argv[0]) into mount(2) calls;
// no calls and no error means "list the mounts".
func Plan(args []string) ([]Call, error) {
	var fstype string
	var opts []string
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%w: %s needs a value", errUsage, a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-t" || a == "--types":
			fstype, err = next()
		case a == "-o" || a == "--options":
			var o string
			o, err = next()
			opts = append(opts, strings.Split(o, ",")...)
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, strings.Split(a[2:], ",")...)
		case strings.HasPrefix(a, "-t") && len(a) > 2:
			fstype = a[2:]
		case a == "--bind" || a == "-B":
			opts = append(opts, "bind")
		case a == "--rbind" || a == "-R":
			opts = append(opts, "rbind")
		case a == "--move" || a == "-M":
			opts = append(opts, "move")
		case a == "-r" || a == "--read-only":
			opts = append(opts, "ro")
		case a == "-w" || a == "--rw" || a == "--read-write":
			opts = append(opts, "rw")
		case strings.HasPrefix(a, "--make-"):
			opts = append(opts, strings.TrimPrefix(a, "--make-"))
		case a == "-n" || a == "--no-mtab" || a == "-c" || a == "--no-canonicalize" || a == "-v" || a == "--verbose" || a == "-i" || a == "--internal-only":
			// No mtab to write, nothing to canonicalise, nothing more to say.
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, fmt.Errorf("%w: unsupported option %s", errUsage, a)
		default:
			pos = append(pos, a)
		}
		if err != nil {
			return nil, err
		}
	}
	var flags uintptr
	var data, props []string
	for _, o := range opts {
		if o == "" {
			continue
		}
		if f, ok := flagOpts[o]; ok {
			if f.clear {
				flags &^= f.set
			} else {
				flags |= f.set
			}
			continue
		}
		if _, ok := propagation[o]; ok {
			props = append(props, o)
			continue
		}
		data = append(data, o)
	}
	var calls []Call
	switch {
	case len(pos) == 0 && len(opts) == 0 && fstype == "":
		return nil, nil
	case len(pos) == 2:
		calls = append(calls, Call{Source: pos[0], Target: pos[1], FSType: fstype, Flags: flags, Data: strings.Join(data, ",")})
	case len(pos) == 1 && len(props) > 0 && flags == 0 && len(data) == 0:
		// mount --make-rshared TARGET: propagation only.
	case len(pos) == 1 && flags&unix.MS_REMOUNT != 0:
		calls = append(calls, Call{Target: pos[0], FSType: fstype, Flags: flags, Data: strings.Join(data, ",")})
	default:
		return nil, fmt.Errorf("%w: want SOURCE TARGET (there is no fstab to look up %q in)", errUsage, strings.Join(pos, " "))
	}
	target := pos[len(pos)-1]
	for _, p := range props {
		calls = append(calls, Call{Source: "none", Target: target, Flags: propagation[p]})
	}
	if calls[0].FSType == "" && calls[0].Flags&(unix.MS_BIND|unix.MS_REMOUNT|unix.MS_MOVE|unix.MS_SHARED|unix.MS_SLAVE|unix.MS_PRIVATE|unix.MS_UNBINDABLE) == 0 {
		return nil, fmt.Errorf("%w: -t TYPE is required (basalt's mount does not probe filesystems)", errUsage)
	}
	return calls, nil
}

// Mount runs mount(8)'s command line and returns its exit code.
func Mount(args []string, stdout, stderr io.Writer, sys Sys) int {
	calls, err := Plan(args)
	if err != nil {
		fmt.Fprintf(stderr, "mount: %v\n", err)
		return exitUsage
	}
	if calls == nil {
		b, err := os.ReadFile(sys.Mounts)
		if err != nil {
			fmt.Fprintf(stderr, "mount: %v\n", err)
			return exitFailure
		}
		stdout.Write(b)
		return 0
	}
	for _, c := range calls {
		if err := sys.Mount(c.Source, c.Target, c.FSType, c.Flags, c.Data); err != nil {
			fmt.Fprintf(stderr, "mount: %s: mount %s (type %q, options %q) failed: %v.\n", c.Target, c.Source, c.FSType, c.Data, err)
			return exitFailure
		}
	}
	return 0
}

// Umount runs umount(8)'s command line: umount [-l] [-f] [-n] [-v] TARGET...
func Umount(args []string, stderr io.Writer, sys Sys) int {
	flags := 0
	var targets []string
	for _, a := range args {
		switch a {
		case "-l", "--lazy":
			flags |= unix.MNT_DETACH
		case "-f", "--force":
			flags |= unix.MNT_FORCE
		case "-n", "--no-mtab", "-v", "--verbose", "-c", "--no-canonicalize", "-i", "--internal-only":
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "umount: unsupported option %s\n", a)
				return exitUsage
			}
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "umount: bad usage: want TARGET")
		return exitUsage
	}
	code := 0
	for _, t := range targets {
		if err := sys.Unmount(t, flags); err != nil {
			code = exitFailure
			if errors.Is(err, unix.EINVAL) {
				// util-linux's wording: kubelet's mount-utils looks for it.
				fmt.Fprintf(stderr, "umount: %s: not mounted.\n", t)
			} else {
				fmt.Fprintf(stderr, "umount: %s: %v.\n", t, err)
			}
		}
	}
	return code
}
