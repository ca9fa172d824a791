package modprobe

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testDir = "testdata/lib/modules/6.1.0-test"

func TestPlan(t *testing.T) {
	ix, err := Open(testDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // module paths in load order; nil with wantErr
		err  string
	}{
		{"module", []string{"overlay"}, []string{"kernel/fs/overlayfs/overlay.ko"}, ""},
		{"alias the kernel asks for", []string{"fs-overlay"}, []string{"kernel/fs/overlayfs/overlay.ko"}, ""},
		{"alias with deps", []string{"ipt_MASQUERADE"}, []string{
			"kernel/net/netfilter/x_tables.ko", "kernel/net/netfilter/nf_defrag_ipv6.ko", "kernel/lib/libcrc32c.ko",
			"kernel/net/netfilter/nf_conntrack.ko", "kernel/net/netfilter/xt_MASQUERADE.ko"}, ""},
		{"xz module", []string{"nfnetlink-subsys-11"}, []string{
			"kernel/net/netfilter/nfnetlink.ko", "kernel/net/netfilter/x_tables.ko", "kernel/net/netfilter/nft_compat.ko.xz"}, ""},
		{"dash and underscore are one", []string{"nf-conntrack"}, []string{
			"kernel/net/netfilter/nf_defrag_ipv6.ko", "kernel/lib/libcrc32c.ko", "kernel/net/netfilter/nf_conntrack.ko"}, ""},
		{"builtin by name", []string{"ext4"}, nil, ""},
		{"builtin by glob alias", []string{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}, nil, ""},
		{"several, each once", []string{"overlay", "fs-overlay", "rtnl-link-vxlan"}, []string{
			"kernel/fs/overlayfs/overlay.ko", "kernel/drivers/net/vxlan/vxlan.ko.zst"}, ""},
		{"unknown", []string{"fs-nosuchfs"}, nil, "module fs-nosuchfs not found in " + testDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := ix.Plan(tc.args)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Plan error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range plan {
				got = append(got, m.Path)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Plan(%v) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want Options
		err  bool
	}{
		{[]string{"-q", "--", "fs-overlay"}, Options{Quiet: true, Names: []string{"fs-overlay"}}, false},
		{[]string{"overlay", "redirect_dir=on", "index=off"}, Options{Names: []string{"overlay"}, Params: "redirect_dir=on index=off"}, false},
		{[]string{"-qa", "overlay", "nf_conntrack"}, Options{Quiet: true, All: true, Names: []string{"overlay", "nf_conntrack"}}, false},
		{[]string{"-b", "-n", "-d", "/mnt", "x"}, Options{DryRun: true, Root: "/mnt", Names: []string{"x"}}, false},
		{[]string{"-r", "overlay"}, Options{}, true},
		{[]string{"-q"}, Options{}, true},
	}
	for _, tc := range tests {
		got, err := ParseArgs(tc.args)
		if (err != nil) != tc.err {
			t.Errorf("ParseArgs(%q) error %v, want error %v", tc.args, err, tc.err)
			continue
		}
		if err == nil {
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseArgs(%q) (-want +got):\n%s", tc.args, diff)
			}
		}
	}
}

// TestRun loads through a fake loader: parameters go to the named module
// only, a failing load is reported unless -q, and the exit code says.
func TestRun(t *testing.T) {
	ix, err := Open(testDir)
	if err != nil {
		t.Fatal(err)
	}
	type call struct{ File, Params string }
	tests := []struct {
		args      []string
		fail      string // module file base name whose load fails
		wantCalls []call
		wantCode  int
		wantErr   string
	}{
		{[]string{"ipt_MASQUERADE", "x=1"}, "", []call{
			{"x_tables.ko", ""}, {"nf_defrag_ipv6.ko", ""}, {"libcrc32c.ko", ""}, {"nf_conntrack.ko", ""}, {"xt_MASQUERADE.ko", "x=1"}}, 0, ""},
		{[]string{"-a", "fs-overlay", "nope"}, "", []call{{"overlay.ko", ""}}, 1, "modprobe: module nope not found in " + testDir + "\n"},
		{[]string{"-q", "-a", "nope", "overlay"}, "", []call{{"overlay.ko", ""}}, 1, ""},
		{[]string{"nf_conntrack"}, "libcrc32c.ko", []call{{"nf_defrag_ipv6.ko", ""}, {"libcrc32c.ko", ""}}, 1, "modprobe: boom\n"},
	}
	for _, tc := range tests {
		var calls []call
		load := func(file, params string) error {
			calls = append(calls, call{filepath.Base(file), params})
			if filepath.Base(file) == tc.fail {
				return errors.New("boom")
			}
			return nil
		}
		o, err := ParseArgs(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := ix.run(o, &stdout, &stderr, load)
		if diff := cmp.Diff(tc.wantCalls, calls); diff != "" {
			t.Errorf("%q loads (-want +got):\n%s", tc.args, diff)
		}
		if code != tc.wantCode || stderr.String() != tc.wantErr {
			t.Errorf("%q: code %d stderr %q, want %d %q", tc.args, code, stderr.String(), tc.wantCode, tc.wantErr)
		}
	}
}

func TestDryRun(t *testing.T) {
	ix, _ := Open(testDir)
	var out bytes.Buffer
	o, _ := ParseArgs([]string{"-n", "rtnl-link-vxlan"})
	if code := ix.run(o, &out, &out, nil); code != 0 || !strings.HasSuffix(strings.TrimSpace(out.String()), "vxlan.ko.zst") {
		t.Errorf("dry run: %d %q", code, out.String())
	}
}
