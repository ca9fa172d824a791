package debian

import (
	"context"
	"fmt"
	"strings"

	"github.com/basaltos/basalt/image/cache"
)

// Input is one Debian package a board needs.
type Input struct {
	Name   string
	Kernel bool // resolve through kernel metapackages
	// Suite, when set, is the one suite the input is resolved from (on
	// the client's Debian mirror), e.g. trixie-backports for a newer kernel.
	Suite string
}

// Fetched is a resolved and downloaded input.
type Fetched struct {
	Input
	Package
	Path string // the .deb in the cache
	// Parts are the other packages of a split kernel (KernelParts).
	Parts []Fetched
}

// FetchInputs resolves and downloads inputs for board. A package pinned in
// lock is fetched at exactly that version unless update is set or it was
// resolved from a suite the client does not use (the spec moved from
// bookworm to trixie: the old pin is stale); the lock is updated in place
// with every input's entry.
func (c *Client) FetchInputs(ctx context.Context, lock *cache.Lock, board string, inputs []Input, update bool) ([]Fetched, error) {
	var out []Fetched
	var entries []cache.LockedPackage
	for _, in := range inputs {
		cl := c
		if in.Suite != "" {
			cl = c.only(in.Suite)
		}
		f, err := cl.fetchInput(ctx, lock, board, in.Name, in.Kernel, update)
		if err != nil {
			return nil, fmt.Errorf("board %s: %w", board, err)
		}
		f.Input = in
		entries = append(entries, f.Package.Lock(in.Name))
		if in.Kernel {
			// A split kernel's parts are pinned by their own names.
			for _, name := range cl.kernelParts(lock, board, f.Package, update) {
				part, err := cl.fetchInput(ctx, lock, board, name, false, update)
				if err != nil {
					return nil, fmt.Errorf("board %s: kernel %s: %w", board, f.Package.Name, err)
				}
				part.Input = Input{Name: name, Suite: in.Suite}
				f.Parts = append(f.Parts, part)
				entries = append(entries, part.Package.Lock(name))
			}
		}
		out = append(out, f)
	}
	lock.Boards[board] = entries
	return out, nil
}

// fetchInput resolves (or takes from lock) and downloads one package.
func (c *Client) fetchInput(ctx context.Context, lock *cache.Lock, board, name string, kernel, update bool) (Fetched, error) {
	var (
		p    Package
		path string
		err  error
	)
	if l, ok := lock.Find(board, name); ok && !update && c.usesSuite(l.Suite) {
		if l.Arch != c.Arch && l.Arch != "all" {
			return Fetched{}, fmt.Errorf("%s: %s is locked for arch %s, board %s is %s; run `basalt fetch --update-lock`", cache.LockName, name, l.Arch, board, c.Arch)
		}
		p = FromLock(l)
		path, err = c.FetchLocked(ctx, l)
	} else {
		if kernel {
			p, err = c.ResolveKernel(ctx, name)
		} else {
			p, err = c.Resolve(ctx, name)
		}
		if err == nil {
			path, err = c.Fetch(ctx, p)
		}
	}
	if err != nil {
		return Fetched{}, err
	}
	return Fetched{Package: p, Path: path}, nil
}

// kernelParts names the parts of kernel package p: from its Depends when
// it was resolved now, from the lock when it was pinned there (a lock
// entry keeps no Depends).
func (c *Client) kernelParts(lock *cache.Lock, board string, p Package, update bool) []string {
	if p.Depends != "" {
		return KernelParts(p.Name, p.Depends)
	}
	var out []string
	rel, ok := strings.CutPrefix(p.Name, "linux-image-")
	for _, kind := range kernelPartKinds {
		if _, locked := lock.Find(board, kind+rel); ok && locked && !update {
			out = append(out, kind+rel)
		}
	}
	return out
}

// only is c resolving from suite alone (on c's first mirror).
func (c *Client) only(suite string) *Client {
	mirror := ""
	if len(c.Sources) > 0 {
		mirror = c.Sources[0].Mirror
	}
	return &Client{Sources: []Source{{Mirror: mirror, Suite: suite}}, Arch: c.Arch, Components: c.Components, Keyring: c.Keyring, Cache: c.Cache, Now: c.Now}
}

// usesSuite reports whether suite is one of c's sources.
func (c *Client) usesSuite(suite string) bool {
	for _, s := range c.Sources {
		if s.Suite == suite {
			return true
		}
	}
	return false
}
