package say

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrintf(t *testing.T) {
	var console, kept strings.Builder
	kmsg := filepath.Join(t.TempDir(), "kmsg") // a file stands in for the device
	if err := os.WriteFile(kmsg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := New(&console, kmsg)
	l.Inherit([]byte("basalt: stage1: earlier\n"))
	l.Printf("step %s ok (%d ms)", "a", 5)
	l.Printf("config reload:\nchanged x\n")
	if err := l.Keep(&kept); err != nil {
		t.Fatal(err)
	}
	l.Printf("ready")

	wantConsole := "basalt: step a ok (5 ms)\nbasalt: config reload:\nbasalt: changed x\nbasalt: ready\n"
	if diff := cmp.Diff(wantConsole, console.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("basalt: stage1: earlier\n"+wantConsole, kept.String()); diff != "" {
		t.Errorf("kept log (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(kmsg)
	if err != nil {
		t.Fatal(err)
	}
	wantKmsg := "<15>basalt: step a ok (5 ms)\n<15>basalt: config reload:\n<15>basalt: changed x\n<15>basalt: ready\n"
	if diff := cmp.Diff(wantKmsg, string(b)); diff != "" {
		t.Errorf("kernel log records (-want +got):\n%s", diff)
	}
}

func TestNoKmsgDevice(t *testing.T) {
	var console strings.Builder
	l := New(&console, filepath.Join(t.TempDir(), "missing", "kmsg"))
	l.Printf("early")
	if console.String() != "basalt: early\n" || string(l.Early()) != "basalt: early\n" {
		t.Errorf("console %q, early %q", console.String(), l.Early())
	}
}

func TestMarkAndUse(t *testing.T) {
	var console strings.Builder
	defer Use(New(&console, ""))()
	Mark("basalt: ready", " (%d ms)", 7)
	if got := console.String(); got != "basalt: ready (7 ms)\n" {
		t.Errorf("got %q", got)
	}
}
