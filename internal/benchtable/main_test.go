package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAndWrite(t *testing.T) {
	in := `goos: linux
pkg: github.com/basaltos/basalt/image/squashfs
BenchmarkWriteVsMksquashfs-2   	       1	5123456789 ns/op	         0.9500 time-ratio	         1.010 size-ratio	        12.30 basalt-s
pkg: github.com/basaltos/basalt/qemu
BenchmarkBoot/qemu-x86_64-2   	       1	9000000000 ns/op	      8123 ms
PASS
ok  	github.com/basaltos/basalt/image/squashfs	12.3s
`
	res, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].name != "image/squashfs WriteVsMksquashfs" || res[1].name != "qemu Boot/qemu-x86_64" {
		t.Fatalf("parse: %+v", res)
	}
	var b strings.Builder
	if err := write(&b, res); err != nil {
		t.Fatal(err)
	}
	want := []string{"size", "1.010x", "time", "0.950x", "12.3 basalt-s", "8123 ms"}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, b.String())
		}
	}
	if d := cmp.Diff("WriteVsMksquashfs", trimProcs("WriteVsMksquashfs-2")); d != "" {
		t.Error(d)
	}
}
