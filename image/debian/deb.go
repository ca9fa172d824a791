package debian

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// errStop ends a walk early without an error.
var errStop = errors.New("stop")

// walkAr calls fn for each member of an ar archive (a .deb's outer layer).
func walkAr(r io.Reader, fn func(name string, size int64, r io.Reader) error) error {
	br := bufio.NewReader(r)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return errors.New("not a .deb: no ar archive header")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("ar: truncated member header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return errors.New("ar: bad member header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("ar: member %q: bad size %q", name, hdr[48:58])
		}
		lr := &io.LimitedReader{R: br, N: size}
		if err := fn(name, size, lr); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return fmt.Errorf("ar: member %q: %w", name, err)
		}
		if lr.N > 0 {
			return fmt.Errorf("ar: member %q truncated", name)
		}
		if size%2 == 1 {
			if _, err := br.ReadByte(); err != nil && err != io.EOF {
				return err
			}
		}
	}
}

// decompress wraps r by the compression named by a member's suffix.
func decompress(name string, r io.Reader) (io.Reader, func(), error) {
	switch {
	case strings.HasSuffix(name, ".tar"):
		return r, func() {}, nil
	case strings.HasSuffix(name, ".tar.xz"):
		xr, err := xz.NewReader(bufio.NewReaderSize(r, 1<<16))
		return xr, func() {}, err
	case strings.HasSuffix(name, ".tar.zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(name, ".tar.gz"):
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return gr, func() { gr.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression of %s", name)
}

// walkTar calls fn for each entry of member (prefix e.g. "data.tar") of the
// .deb read from r. Names are cleaned and relative: "./boot/x" is "boot/x".
func walkTar(r io.Reader, prefix string, fn func(hdr *tar.Header, r io.Reader) error) error {
	found := false
	err := walkAr(r, func(name string, _ int64, mr io.Reader) error {
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		found = true
		dr, closeFn, err := decompress(name, mr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer closeFn()
		tr := tar.NewReader(dr)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return errStop
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			hdr.Name = cleanName(hdr.Name)
			if hdr.Name == "" {
				continue
			}
			if err := fn(hdr, tr); err != nil {
				return err
			}
		}
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil && !found {
		err = fmt.Errorf("not a .deb: no %s.* member", prefix)
	}
	return err
}

func cleanName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// Extract calls fn for every entry of the data.tar.{xz,zst,gz} of the .deb
// read from r (untrusted bytes). Entry names are relative and clean
// ("boot/vmlinuz-6.1.0-28-cloud-amd64"); fn reads a regular file's content
// from r. An error from fn stops the walk and is returned.
func Extract(r io.Reader, fn func(hdr *tar.Header, r io.Reader) error) error {
	return walkTar(r, "data.tar", fn)
}

// Deb is a .deb file on disk, local or from the cache.
type Deb struct {
	Path string
	// Control is the package's DEBIAN/control paragraph.
	Control Paragraph
}

// OpenDeb reads the control data of the .deb at path.
func OpenDeb(path string) (*Deb, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ctl []byte
	err = walkTar(f, "control.tar", func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name != "control" {
			return nil
		}
		ctl, err = io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return err
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d := &Deb{Path: path}
	if err := ParseParagraphs(bytes.NewReader(ctl), func(p Paragraph) error {
		if d.Control == nil {
			d.Control = p
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: control: %w", path, err)
	}
	if d.Control["Package"] == "" {
		return nil, fmt.Errorf("%s: not a .deb: control has no Package field", path)
	}
	return d, nil
}

// Name returns "package version (arch)" for messages.
func (d *Deb) Name() string {
	return fmt.Sprintf("%s %s (%s)", d.Control["Package"], d.Control["Version"], d.Control["Architecture"])
}

// Extract walks the package's data files; see the function Extract.
func (d *Deb) Extract(fn func(hdr *tar.Header, r io.Reader) error) error {
	f, err := os.Open(d.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Extract(f, fn); err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	return nil
}

// ReadFile returns the content of one regular file of the package
// ("usr/lib/systemd/boot/efi/systemd-bootx64.efi").
func (d *Deb) ReadFile(name string) ([]byte, error) {
	name = cleanName(name)
	var data []byte
	found := false
	err := d.Extract(func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name != name || hdr.Typeflag != tar.TypeReg {
			return nil
		}
		found = true
		var err error
		data, err = io.ReadAll(r)
		if err != nil {
			return err
		}
		return errStop
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: package %s has no file %s: %w", d.Path, d.Name(), name, fs.ErrNotExist)
	}
	return data, nil
}

// ExtractTo writes the entries for which match returns true (directories,
// regular files, symlinks, hard links) below dir, which must exist. Writes
// go through os.Root, so no entry can escape dir. Files get the package's
// permissions (plus owner write) whatever the umask: the image's modes come
// from them. It returns the names written.
func (d *Deb) ExtractTo(dir string, match func(name string) bool) ([]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var names []string
	err = d.Extract(func(hdr *tar.Header, r io.Reader) error {
		if !match(hdr.Name) {
			return nil
		}
		if p := path.Dir(hdr.Name); p != "." {
			if err := root.MkdirAll(p, 0o755); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(hdr.Name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			mode := fs.FileMode(hdr.Mode).Perm() | 0o200
			f, err := root.OpenFile(hdr.Name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, r)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil { // the package's mode, whatever the umask
				err = root.Chmod(hdr.Name, mode)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			root.Remove(hdr.Name)
			if err := root.Symlink(hdr.Linkname, hdr.Name); err != nil {
				return err
			}
		case tar.TypeLink:
			root.Remove(hdr.Name)
			if err := root.Link(cleanName(hdr.Linkname), hdr.Name); err != nil {
				return err
			}
		default:
			return nil
		}
		names = append(names, hdr.Name)
		return nil
	})
	return names, err
}
