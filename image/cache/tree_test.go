package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTree(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fills := 0
	fill := func(dir string) error {
		fills++
		if err := os.MkdirAll(filepath.Join(dir, "lib/modules"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "lib/modules/a.ko"), []byte("ELF"), 0o644); err != nil {
			return err
		}
		return os.Symlink("modules/a.ko", filepath.Join(dir, "lib/link"))
	}
	read := func(root string) string {
		b, err := os.ReadFile(filepath.Join(root, "lib/modules/a.ko"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	root, err := c.Tree("kernel-v1-abc", fill)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(root); got != "ELF" || fills != 1 {
		t.Errorf("first Tree: a.ko %q, %d fills", got, fills)
	}
	// A hit: no fill.
	if root2, err := c.Tree("kernel-v1-abc", fill); err != nil || root2 != root || fills != 1 {
		t.Errorf("second Tree: %s, %v, %d fills; want %s, 1 fill", root2, err, fills, root)
	}
	// Changed content, mode, an added file or a removed link: filled again.
	for name, damage := range map[string]func() error{
		"content": func() error { return os.WriteFile(filepath.Join(root, "lib/modules/a.ko"), []byte("bitrot"), 0o644) },
		"mode":    func() error { return os.Chmod(filepath.Join(root, "lib/modules/a.ko"), 0o600) },
		"added":   func() error { return os.WriteFile(filepath.Join(root, "lib/extra"), nil, 0o644) },
		"link":    func() error { return os.Remove(filepath.Join(root, "lib/link")) },
	} {
		before := fills
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		got, err := c.Tree("kernel-v1-abc", fill)
		if err != nil || fills != before+1 || read(got) != "ELF" {
			t.Errorf("%s: Tree after damage: %v, %d fills (want %d), a.ko %q", name, err, fills, before+1, read(got))
		}
		if _, err := os.Stat(filepath.Join(got, "lib/extra")); err == nil {
			t.Errorf("%s: the damaged tree's extra file survived", name)
		}
	}
	// A failing fill leaves nothing behind, in the tree or in tmp.
	boom := errors.New("boom")
	if _, err := c.Tree("other", func(dir string) error {
		os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("failing fill: err %v, want boom", err)
	}
	for _, d := range []string{"tree", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(c.Dir, d))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		want := map[string][]string{"tree": {"kernel-v1-abc"}, "tmp": nil}[d]
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("%s after a failing fill (-want +got):\n%s", d, diff)
		}
	}
	for _, key := range []string{"", "../x", "a/b", "A"} {
		if _, err := c.Tree(key, fill); err == nil {
			t.Errorf("Tree(%q): no error", key)
		}
	}
}
