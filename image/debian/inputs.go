package debian

import (
	"context"
	"fmt"

	"github.com/basaltos/basalt/image/cache"
)

// Input is one Debian package a board needs.
type Input struct {
	Name   string
	Kernel bool // resolve through kernel metapackages
}

// Fetched is a resolved and downloaded input.
type Fetched struct {
	Input
	Package
	Path string // the .deb in the cache
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
		var (
			p    Package
			path string
			err  error
		)
		if l, ok := lock.Find(board, in.Name); ok && !update && c.usesSuite(l.Suite) {
			if l.Arch != c.Arch && l.Arch != "all" {
				return nil, fmt.Errorf("%s: %s is locked for arch %s, board %s is %s; run `basalt fetch --update-lock`", cache.LockName, in.Name, l.Arch, board, c.Arch)
			}
			p = FromLock(l)
			path, err = c.FetchLocked(ctx, l)
		} else {
			if in.Kernel {
				p, err = c.ResolveKernel(ctx, in.Name)
			} else {
				p, err = c.Resolve(ctx, in.Name)
			}
			if err == nil {
				path, err = c.Fetch(ctx, p)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("board %s: %w", board, err)
		}
		out = append(out, Fetched{Input: in, Package: p, Path: path})
		entries = append(entries, p.Lock(in.Name))
	}
	lock.Boards[board] = entries
	return out, nil
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
