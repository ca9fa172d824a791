package tree

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSortedIsIndependentOfInsertionOrder(t *testing.T) {
	paths := []string{"a-b", "a/b/c", "b", "a/c", "a.x"}
	var got [][]string
	for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}} {
		tr := New(1)
		for _, i := range order {
			if err := tr.AddBytes(paths[i], 0o644, nil); err != nil {
				t.Fatal(err)
			}
		}
		var ps []string
		for _, e := range tr.Sorted() {
			ps = append(ps, e.Path)
		}
		got = append(got, ps)
	}
	for _, g := range got[1:] {
		if d := cmp.Diff(got[0], g); d != "" {
			t.Errorf("order differs (-first +this):\n%s", d)
		}
	}
	want := []string{"", "a", "a/b", "a/b/c", "a/c", "a-b", "a.x", "b"}
	if d := cmp.Diff(want, got[0]); d != "" {
		t.Errorf("Sorted (-want +got):\n%s", d)
	}
}

func TestCleanRejects(t *testing.T) {
	for _, p := range []string{"a/../b", "./a", "a//b", "a\x00b", "../x"} {
		if _, err := Clean(p); err == nil {
			t.Errorf("Clean(%q): want error", p)
		}
	}
	if p, err := Clean("/etc/hosts/"); err != nil || p != "etc/hosts" {
		t.Errorf("Clean: got %q, %v", p, err)
	}
}

func TestCheckHardLinks(t *testing.T) {
	tr := New(0)
	if err := tr.AddBytes("f", 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(Entry{Path: "l", Type: Regular, Mode: 0o644, Link: "f"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(Entry{Path: "bad", Type: Regular, Mode: 0o644, Link: "missing"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err == nil {
		t.Fatal("want error for link to missing entry")
	}
}

func TestChildren(t *testing.T) {
	tr := New(0)
	for _, p := range []string{"x/y", "x/z/w", "q"} {
		if err := tr.AddBytes(p, 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, e := range tr.Children("x") {
		names = append(names, e.Name())
	}
	if d := cmp.Diff([]string{"y", "z"}, names); d != "" {
		t.Error(d)
	}
	if n := len(tr.Children("")); n != 2 {
		t.Errorf("root children: %d", n)
	}
}
