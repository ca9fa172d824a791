package mountcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestPlan: the command lines kubelet's mount-utils and k3s write.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		args string
		want []Call
	}{
		{"-t tmpfs -o size=1024k tmpfs /var/lib/kubelet/pods/x/volumes/kubernetes.io~projected/kube-api-access",
			[]Call{{Source: "tmpfs", Target: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~projected/kube-api-access", FSType: "tmpfs", Data: "size=1024k"}}},
		{"-o bind /src /dst", []Call{{Source: "/src", Target: "/dst", Flags: unix.MS_BIND}}},
		{"-o bind,remount,ro /src /dst", []Call{{Source: "/src", Target: "/dst", Flags: unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY}}},
		{"--no-canonicalize -t ext4 -o defaults,noatime,rw /dev/vdb /mnt", []Call{{Source: "/dev/vdb", Target: "/mnt", FSType: "ext4", Flags: unix.MS_NOATIME}}},
		{"--rbind /a /b", []Call{{Source: "/a", Target: "/b", Flags: unix.MS_BIND | unix.MS_REC}}},
		{"--make-rshared /", []Call{{Source: "none", Target: "/", Flags: unix.MS_SHARED | unix.MS_REC}}},
		{"-o bind,rslave /a /b", []Call{{Source: "/a", Target: "/b", Flags: unix.MS_BIND}, {Source: "none", Target: "/b", Flags: unix.MS_SLAVE | unix.MS_REC}}},
		{"-o remount,ro /data", []Call{{Target: "/data", Flags: unix.MS_REMOUNT | unix.MS_RDONLY}}},
		{"", nil},
	} {
		t.Run(tc.args, func(t *testing.T) {
			got, err := Plan(strings.Fields(tc.args))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, args := range []string{"/dev/vdb /mnt", "-t tmpfs /only", "-x a b", "-t", "a b c"} {
		if _, err := Plan(strings.Fields(args)); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestMountAndUmountCodes(t *testing.T) {
	var calls []Call
	fail := false
	sys := Sys{
		Mount: func(s, tg, fs string, fl uintptr, d string) error {
			calls = append(calls, Call{s, tg, fs, fl, d})
			if fail {
				return unix.EPERM
			}
			return nil
		},
		Unmount: func(tg string, fl int) error {
			if tg == "/not-mounted" {
				return unix.EINVAL
			}
			return nil
		},
		Mounts: filepath.Join(t.TempDir(), "mounts"),
	}
	os.WriteFile(sys.Mounts, []byte("tmpfs /run tmpfs rw 0 0\n"), 0o644)
	var out, errb bytes.Buffer
	if c := Mount([]string{"-t", "tmpfs", "tmpfs", "/x"}, &out, &errb, sys); c != 0 || len(calls) != 1 {
		t.Errorf("mount: %d %v %s", c, calls, errb.String())
	}
	fail = true
	if c := Mount([]string{"-t", "tmpfs", "tmpfs", "/x"}, &out, &errb, sys); c != exitFailure {
		t.Errorf("failing mount: exit %d", c)
	}
	if c := Mount([]string{"/only"}, &out, &errb, sys); c != exitUsage {
		t.Errorf("bad usage: exit %d", c)
	}
	out.Reset()
	if c := Mount(nil, &out, &errb, sys); c != 0 || out.String() != "tmpfs /run tmpfs rw 0 0\n" {
		t.Errorf("list: %d %q", c, out.String())
	}
	errb.Reset()
	if c := Umount([]string{"/not-mounted"}, &errb, sys); c != exitFailure || errb.String() != "umount: /not-mounted: not mounted.\n" {
		t.Errorf("umount not mounted: %d %q", c, errb.String())
	}
	if c := Umount([]string{"-l", "/x"}, &errb, sys); c != 0 {
		t.Errorf("umount -l: %d", c)
	}
}

// TestRealTmpfs mounts and unmounts a tmpfs for real (needs root).
func TestRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if c := Mount([]string{"-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir}, &out, &errb, Linux); c != 0 {
		t.Skipf("mount tmpfs (no CAP_SYS_ADMIN here?): %s", errb.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Error(err)
	}
	if c := Umount([]string{dir}, &errb, Linux); c != 0 {
		t.Fatalf("umount: %s", errb.String())
	}
	if c := Umount([]string{dir}, &errb, Linux); c != exitFailure || !strings.Contains(errb.String(), "not mounted") {
		t.Errorf("second umount: %d %q", c, errb.String())
	}
}
