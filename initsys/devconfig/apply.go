package devconfig

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/basaltos/basalt/contract/config"
)

// ApplyOptions say where to apply a config.
type ApplyOptions struct {
	// Root is prepended to every path ("/" on the device, a temp dir in tests).
	Root string
	// Chown sets owners (needs root; tests on the host leave it false).
	Chown bool
}

// DefaultHome is the parent of home directories: /var is on the data
// partition, so homes persist across updates.
const DefaultHome = "/var/home"

// Apply writes the files and creates the users of cfg: write_files without
// defer, then users (/etc/passwd, /etc/group, /etc/shadow, home with
// .ssh/authorized_keys), then deferred write_files. It goes on after a
// failing entry and returns all failures joined.
func Apply(ctx context.Context, cfg *config.Config, o ApplyOptions) error {
	var errs []error
	for _, deferred := range []bool{false, true} {
		if deferred {
			if err := applyUsers(cfg.EffectiveUsers(), o); err != nil {
				errs = append(errs, err)
			}
		}
		for _, f := range cfg.WriteFiles {
			if f.Defer != deferred {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := writeFile(f, o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func writeFile(f config.WriteFile, o ApplyOptions) error {
	data, err := config.DecodeContent(f)
	if err != nil {
		return fmt.Errorf("write_files %s: %w", f.Path, err)
	}
	mode, err := f.Mode()
	if err != nil {
		return fmt.Errorf("write_files %s: %w", f.Path, err)
	}
	p := filepath.Join(o.Root, f.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write_files %s: %w", f.Path, err)
	}
	if f.Append {
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, os.FileMode(mode)&os.ModePerm)
		if err == nil {
			_, err = fh.Write(data)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("write_files %s: %w", f.Path, err)
		}
	} else if err := writeAtomic(p, data, os.FileMode(mode)&os.ModePerm); err != nil {
		return fmt.Errorf("write_files: %w", err)
	}
	if err := os.Chmod(p, fileMode(mode)); err != nil {
		return fmt.Errorf("write_files %s: %w", f.Path, err)
	}
	if o.Chown {
		owner := f.Owner
		if owner == "" {
			owner = "root:root"
		}
		uid, gid, err := lookupOwner(o.Root, owner)
		if err != nil {
			return fmt.Errorf("write_files %s: %w", f.Path, err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("write_files %s: %w", f.Path, err)
		}
	}
	return nil
}

func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m) & os.ModePerm
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// table is a colon-separated /etc file (passwd, group, shadow).
type table struct {
	path string
	rows [][]string
}

func readTable(path string) (*table, error) {
	t := &table{path: path}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			t.rows = append(t.rows, strings.Split(line, ":"))
		}
	}
	return t, nil
}

func (t *table) find(name string) []string {
	for _, r := range t.rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

// freeID returns the lowest unused ID >= 1000 in column col.
func (t *table) freeID(col int, taken map[int]bool) int {
	for _, r := range t.rows {
		if len(r) > col {
			if n, err := strconv.Atoi(r[col]); err == nil {
				taken[n] = true
			}
		}
	}
	id := 1000
	for taken[id] {
		id++
	}
	return id
}

func (t *table) write(mode os.FileMode) error {
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	return writeAtomic(t.path, []byte(b.String()), mode)
}

func lookupOwner(root, owner string) (int, int, error) {
	user, group, _ := strings.Cut(owner, ":")
	pw, err := readTable(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return 0, 0, err
	}
	u := pw.find(user)
	if len(u) < 4 {
		return 0, 0, fmt.Errorf("owner %s: no such user", user)
	}
	uid, _ := strconv.Atoi(u[2])
	gid, _ := strconv.Atoi(u[3])
	if group != "" {
		gr, err := readTable(filepath.Join(root, "etc/group"))
		if err != nil {
			return 0, 0, err
		}
		g := gr.find(group)
		if len(g) < 3 {
			return 0, 0, fmt.Errorf("owner %s: no such group", group)
		}
		gid, _ = strconv.Atoi(g[2])
	}
	return uid, gid, nil
}

// applyUsers adds missing users and groups, updates shell, password and
// group membership of existing ones, and writes authorized_keys.
func applyUsers(users []config.User, o ApplyOptions) error {
	if len(users) == 0 {
		return nil
	}
	etc := filepath.Join(o.Root, "etc")
	pw, err := readTable(filepath.Join(etc, "passwd"))
	if err != nil {
		return err
	}
	gr, err := readTable(filepath.Join(etc, "group"))
	if err != nil {
		return err
	}
	sh, err := readTable(filepath.Join(etc, "shadow"))
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range users {
		home := filepath.Join(DefaultHome, u.Name)
		if u.Name == "root" {
			home = "/root" // on data too (initsys/mounts binds it)
		}
		if u.HomeDir != nil {
			home = *u.HomeDir
		}
		shell := "/bin/sh"
		if u.Shell != nil {
			shell = *u.Shell
		}
		gecos := ""
		if u.Gecos != nil {
			gecos = strings.ReplaceAll(*u.Gecos, ":", " ")
		}
		pg := u.Name
		if u.PrimaryGroup != nil {
			pg = *u.PrimaryGroup
		}
		g := gr.find(pg)
		if g == nil {
			g = []string{pg, "x", strconv.Itoa(gr.freeID(2, map[int]bool{})), ""}
			gr.rows = append(gr.rows, g)
		}
		row := pw.find(u.Name)
		if row == nil {
			uid := pw.freeID(2, map[int]bool{})
			if u.UID != nil {
				uid = *u.UID
			}
			row = []string{u.Name, "x", strconv.Itoa(uid), g[2], gecos, home, shell}
			pw.rows = append(pw.rows, row)
		} else if len(row) == 7 {
			row[3], row[5], row[6] = g[2], home, shell
			if u.Gecos != nil {
				row[4] = gecos
			}
		}
		for _, name := range u.Groups {
			sg := gr.find(name)
			if sg == nil {
				sg = []string{name, "x", strconv.Itoa(gr.freeID(2, map[int]bool{})), ""}
				gr.rows = append(gr.rows, sg)
			}
			if len(sg) == 4 && !slices.Contains(strings.Split(sg[3], ","), u.Name) {
				sg[3] = strings.TrimPrefix(sg[3]+","+u.Name, ",")
			}
		}
		hash := "!"
		if u.Passwd != nil {
			hash = string(*u.Passwd)
			if *u.LockPasswd && !strings.HasPrefix(hash, "!") {
				hash = "!" + hash
			}
		}
		if s := sh.find(u.Name); len(s) > 1 {
			s[1] = hash
		} else {
			sh.rows = append(sh.rows, []string{u.Name, hash, "0", "0", "99999", "7", "", "", ""})
		}
		uid, _ := strconv.Atoi(row[2])
		gid, _ := strconv.Atoi(row[3])
		if err := writeHome(filepath.Join(o.Root, home), u.SSHAuthorizedKeys, uid, gid, o.Chown); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
		}
	}
	for _, w := range []struct {
		t    *table
		mode os.FileMode
	}{{gr, 0o644}, {pw, 0o644}, {sh, 0o600}} {
		if err := w.t.write(w.mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func writeHome(home string, keys []string, uid, gid int, chown bool) error {
	ssh := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	paths := []string{home, ssh}
	if len(keys) > 0 {
		ak := filepath.Join(ssh, "authorized_keys")
		if err := writeAtomic(ak, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		paths = append(paths, ak)
	}
	if chown {
		for _, p := range paths {
			if err := os.Lchown(p, uid, gid); err != nil {
				return fmt.Errorf("home: %w", err)
			}
		}
	}
	return nil
}
