package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// treeKey is what a tree key may look like: a file name, no path.
var treeKey = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Tree returns the directory of the unpacked tree stored under key, filling
// it on a miss: fill writes into an empty temporary directory, which is
// renamed into place (<Dir>/tree/<key>/root) only when fill succeeded, so a
// present tree is complete. Keys are content addresses chosen by the caller
// (such as "kernel-v1-" + the sha256 of the .deb it was unpacked from): the
// same key must always mean the same content.
//
// Like blobs, trees are checked on every use: each tree keeps a list of its
// entries with their modes and sha256 (<Dir>/tree/<key>/sums), and a tree
// that no longer matches it is removed and filled again.
func (c *Cache) Tree(key string, fill func(dir string) error) (string, error) {
	if !treeKey.MatchString(key) {
		return "", fmt.Errorf("cache: invalid tree key %q", key)
	}
	final := filepath.Join(c.Dir, "tree", key)
	if root, ok := checkTree(final); ok {
		return root, nil
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "tree"), 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	// A tree that exists but does not check out is moved aside first, so
	// that no reader ever sees it half removed.
	if _, err := os.Stat(final); err == nil {
		if bad, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), "bad-tree-*"); err == nil {
			if os.Rename(final, filepath.Join(bad, key)) == nil {
				defer os.RemoveAll(bad)
			} else {
				os.RemoveAll(bad)
			}
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), "tree-*")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := fill(root); err != nil {
		return "", err
	}
	sums, err := treeSums(root)
	if err != nil {
		return "", fmt.Errorf("cache: tree %s: %w", key, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "sums"), sums, 0o644); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another build may have stored the same tree meanwhile.
		if root, ok := checkTree(final); ok {
			return root, nil
		}
		return "", fmt.Errorf("cache: %w", err)
	}
	return filepath.Join(final, "root"), nil
}

// checkTree reports whether the tree in dir matches its sums, and returns
// its root.
func checkTree(dir string) (string, bool) {
	want, err := os.ReadFile(filepath.Join(dir, "sums"))
	if err != nil {
		return "", false
	}
	root := filepath.Join(dir, "root")
	got, err := treeSums(root)
	return root, err == nil && bytes.Equal(got, want)
}

// treeSums lists the tree below root in lexical order, a line per entry:
// "d MODE PATH", "l TARGET PATH" or "f MODE SHA256 PATH". Files are hashed
// on all cores.
func treeSums(root string) ([]byte, error) {
	var lines []string
	var files []int // indexes of lines waiting for a file's sha256
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			lines = append(lines, fmt.Sprintf("d %o %s\n", info.Mode().Perm(), rel))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("l %s %s\n", target, rel))
		case d.Type().IsRegular():
			files = append(files, len(lines))
			lines = append(lines, fmt.Sprintf("%o %s", info.Mode().Perm(), rel))
		default:
			return fmt.Errorf("%s: unexpected file type %s", p, d.Type())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 128<<10)
			for i := range next {
				mode, rel, _ := strings.Cut(lines[files[i]], " ")
				sum, err := sha256File(filepath.Join(root, filepath.FromSlash(rel)), buf)
				errs[i] = err
				lines[files[i]] = "f " + mode + " " + sum + " " + rel + "\n"
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return []byte(strings.Join(lines, "")), nil
}

// FileSHA returns the sha256 (lower-case hex) of a host file.
func FileSHA(path string) (string, error) { return sha256File(path, nil) }

func sha256File(path string, buf []byte) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	// Hide *os.File's WriteTo, which would ignore buf.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
