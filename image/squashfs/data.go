package squashfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"sync"

	"github.com/basaltos/basalt/image/tree"
)

// fileRec is where a regular file's content landed.
type fileRec struct {
	size    int64
	start   uint64   // offset of the first data block
	blocks  []uint32 // on-disk size of each full block (0: sparse)
	frag    uint32   // fragment block holding the tail, or noFrag
	fragOff uint32
	sparse  uint64   // bytes stored as sparse blocks
	same    *fileRec // an earlier file with identical content, if any
}

// stored returns the record that holds the content.
func (r *fileRec) stored() *fileRec {
	if r.same != nil {
		return r.same
	}
	return r
}

type jobKind uint8

const (
	dataJob jobKind = iota
	sparseJob
	fragJob
)

// job is one block on its way to the output: the planner reads it, a worker
// compresses it, the sink writes it in planning order.
type job struct {
	kind jobKind
	rec  *fileRec
	idx  int
	raw  []byte
	out  []byte // compressed, or nil to store raw
	err  error
	done chan struct{}
}

type contentKey struct {
	size int64
	sum  [sha256.Size]byte
}

var errStopped = errors.New("stopped")

// writeData streams every file's blocks and the fragment blocks to b.out.
func (b *builder) writeData() error {
	workers := b.opt.Workers
	work := make(chan *job, 2*workers)
	queue := make(chan *job, 4*workers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range work {
				buf := b.getBuf()
				if j.out, j.err = b.comp.compress(buf, j.raw); j.out == nil {
					b.putBuf(buf)
				}
				close(j.done)
			}
		})
	}
	var planErr error
	go func() {
		planErr = b.plan(work, queue, quit)
		close(work)
		close(queue)
	}()
	sinkErr := b.sink(queue)
	if sinkErr != nil {
		close(quit)
		for range queue {
		}
	}
	wg.Wait()
	if planErr != nil && !errors.Is(planErr, errStopped) {
		return planErr
	}
	return sinkErr
}

func (b *builder) sink(queue <-chan *job) error {
	for j := range queue {
		<-j.done
		if j.err != nil {
			return j.err
		}
		data, size := j.out, uint32(len(j.out))
		if data == nil {
			data, size = j.raw, uint32(len(j.raw))|dataStored
		}
		switch j.kind {
		case sparseJob:
			if j.idx == 0 {
				j.rec.start = uint64(b.out.n)
			}
			j.rec.sparse += uint64(b.opt.BlockSize)
			b.stats.SparseBlocks++
			b.putBuf(j.raw)
			continue
		case dataJob:
			if j.idx == 0 {
				j.rec.start = uint64(b.out.n)
			}
			j.rec.blocks[j.idx] = size
			b.stats.DataBlocks++
		case fragJob:
			b.frags = append(b.frags, fragEntry{uint64(b.out.n), size})
			b.stats.Fragments++
		}
		if _, err := b.out.Write(data); err != nil {
			return err
		}
		b.putBuf(j.raw)
		if j.out != nil {
			b.putBuf(j.out)
		}
	}
	return nil
}

type fragEntry struct {
	start uint64
	size  uint32
}

func (b *builder) getBuf() []byte {
	if p, ok := b.bufs.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, b.opt.BlockSize)
}

func (b *builder) putBuf(p []byte) {
	if cap(p) == b.opt.BlockSize {
		p = p[:cap(p)]
		b.bufs.Put(&p)
	}
}

// plan reads the files in order and turns them into jobs: full blocks
// (sparse when all zero), tails packed into fragment blocks, duplicates
// pointed at the first copy.
func (b *builder) plan(work, queue chan<- *job, quit <-chan struct{}) error {
	bs := int64(b.opt.BlockSize)
	emit := func(j *job) error {
		j.done = make(chan struct{})
		select {
		case queue <- j:
		case <-quit:
			return errStopped
		}
		if j.kind == sparseJob {
			close(j.done)
			return nil
		}
		select {
		case work <- j:
			return nil
		case <-quit:
			return errStopped
		}
	}
	// Only files whose size is not unique can have a duplicate, so only
	// they are hashed: those with at least one full block before they are
	// written, so that a duplicate is never written at all.
	sameSize := map[int64]int{}
	for _, n := range b.l.files {
		sameSize[n.rec.size]++
	}
	seen := map[contentKey]*fileRec{}
	frag := b.getBuf()[:0]
	var fragCount uint32 // index of the fragment block being filled
	zero := make([]byte, bs)
	tailBuf := make([]byte, bs)
	hasher := sha256.New()
	for _, n := range fileOrder(b.l.files, bs) {
		rec, e := n.rec, n.e
		full := rec.size / bs
		var pre *contentKey
		dupable := sameSize[rec.size] > 1
		if full > 0 && dupable {
			k, err := hashContent(e)
			if err != nil {
				return err
			}
			if orig := seen[k]; orig != nil {
				rec.same = orig
				b.stats.Duplicates++
				b.stats.DataBytes += rec.size
				continue
			}
			seen[k], pre = rec, &k
		}
		r, err := e.Open()
		if err != nil {
			return fmt.Errorf("%s: open: %w", e.Path, err)
		}
		var h hash.Hash
		if dupable {
			hasher.Reset()
			h = hasher
		}
		rec.blocks = make([]uint32, full)
		var readErr error
		for i := range int(full) {
			buf := b.getBuf()
			if readErr = readExactly(r, e, buf, int64(i)*bs); readErr != nil {
				break
			}
			if h != nil {
				h.Write(buf)
			}
			kind := dataJob
			if bytes.Equal(buf, zero) {
				kind = sparseJob
			}
			if readErr = emit(&job{kind: kind, rec: rec, idx: i, raw: buf}); readErr != nil {
				break
			}
		}
		var tail []byte
		if readErr == nil {
			tail = tailBuf[:rec.size%bs]
			readErr = readExactly(r, e, tail, full*bs)
		}
		if readErr == nil && h != nil {
			h.Write(tail)
		}
		if readErr == nil {
			readErr = checkEOF(r, e)
		}
		if err := errors.Join(readErr, r.Close()); err != nil {
			return err
		}
		b.stats.DataBytes += rec.size
		if h != nil {
			k := contentKey{size: rec.size}
			h.Sum(k.sum[:0])
			if pre != nil && k != *pre {
				return fmt.Errorf("%s: content changed between two reads", e.Path)
			}
			if full == 0 {
				if orig := seen[k]; orig != nil {
					rec.same = orig
					b.stats.Duplicates++
					continue
				}
				seen[k] = rec
			}
		}
		if len(tail) == 0 {
			continue
		}
		if len(frag)+len(tail) > int(bs) {
			if err := emit(&job{kind: fragJob, raw: frag}); err != nil {
				return err
			}
			frag = b.getBuf()[:0]
			fragCount++
		}
		rec.frag, rec.fragOff = fragCount, uint32(len(frag))
		frag = append(frag, tail...)
	}
	if len(frag) > 0 {
		return emit(&job{kind: fragJob, raw: frag})
	}
	return nil
}

// hashContent reads e once to find duplicates before writing.
func hashContent(e *tree.Entry) (contentKey, error) {
	k := contentKey{size: e.Size}
	r, err := e.Open()
	if err != nil {
		return k, fmt.Errorf("%s: open: %w", e.Path, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, e.Size))
	if err == nil && n != e.Size {
		err = fmt.Errorf("%s: content is %d bytes, want size %d", e.Path, n, e.Size)
	}
	if err == nil {
		err = checkEOF(r, e)
	}
	if err = errors.Join(err, r.Close()); err != nil {
		return k, err
	}
	h.Sum(k.sum[:0])
	return k, nil
}

func readExactly(r io.Reader, e *tree.Entry, buf []byte, off int64) error {
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: content is %d bytes, want size %d", e.Path, off+int64(n), e.Size)
	}
	if err != nil {
		return fmt.Errorf("%s: read: %w", e.Path, err)
	}
	return nil
}

func checkEOF(r io.Reader, e *tree.Entry) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return fmt.Errorf("%s: content is longer than size %d", e.Path, e.Size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: read: %w", e.Path, err)
	}
	return nil
}

// fileOrder returns the order in which files' data is written: files with
// full blocks first, in plan order, then the small ones (fragment-only)
// grouped by extension so that similar content shares fragment blocks.
func fileOrder(files []*node, bs int64) []*node {
	var big, small []*node
	for _, n := range files {
		if n.rec.size >= bs {
			big = append(big, n)
		} else {
			small = append(small, n)
		}
	}
	sort.SliceStable(small, func(i, j int) bool {
		return path.Ext(small[i].e.Path) < path.Ext(small[j].e.Path)
	})
	return append(big, small...)
}
