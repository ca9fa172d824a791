package fat

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ReadWriterAt is a device AddFile edits in place.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// AddFile creates or replaces the file at slash-separated path p in the
// FAT32 filesystem at offset of dev (size bytes), creating missing
// directories; mtime (Unix seconds, stored as UTC) stamps the file and the
// directories it creates. Clusters are taken first-fit from the start, so
// the same edit of the same image gives the same bytes.
//
// The file's clusters are written first, then the FATs and FSInfo, then the
// directory entry: an interrupted AddFile leaves at worst lost clusters.
func AddFile(dev ReadWriterAt, offset, size int64, p string, data []byte, mtime int64) error {
	f, err := Open(dev, offset, size)
	if err != nil {
		return err
	}
	e := &editor{FS: f, w: dev}
	if err := e.addFile(p, data, mtime); err != nil {
		return fmt.Errorf("fat: add %s: %w", p, err)
	}
	return nil
}

type editor struct {
	*FS
	w io.WriterAt
}

func (e *editor) addFile(p string, data []byte, mtime int64) error {
	if int64(len(data)) > 0xFFFFFFFF {
		return errors.New("file larger than 4 GiB - 1")
	}
	els := strings.Split(strings.Trim(p, "/"), "/")
	for _, el := range els {
		if err := checkLongName(el); err != nil {
			return err
		}
	}
	dir := e.g.rootClus
	for _, el := range els[:len(els)-1] {
		_, _, ents, err := e.dir(dir)
		if err != nil {
			return err
		}
		if s := lookup(ents, el); s != nil {
			if !s.Dir {
				return fmt.Errorf("%s is a file, not a directory", s.Name)
			}
			dir = s.cluster
			continue
		}
		if dir, err = e.mkdir(dir, el, mtime); err != nil {
			return err
		}
	}
	name := els[len(els)-1]
	raw, ch, ents, err := e.dir(dir)
	if err != nil {
		return err
	}
	old := lookup(ents, name)
	if old != nil && old.Dir {
		return fmt.Errorf("%s is a directory", old.Name)
	}
	if old != nil && old.cluster != 0 {
		oldChain, err := e.chain(old.cluster)
		if err != nil {
			return err
		}
		for _, c := range oldChain {
			le32(e.fat[4*c:], 0)
		}
	}
	first, err := e.write(data)
	if err != nil {
		return err
	}
	if err := e.flushFAT(); err != nil {
		return err
	}
	if old != nil {
		ent := raw[old.index*dirEntSize : (old.index+1)*dirEntSize]
		caseFlags := ent[12]
		copy(ent, shortEntry(old.sn, ent[11], first, uint32(len(data)), mtime))
		ent[12] = caseFlags
		return e.writeDir(raw, ch)
	}
	return e.addEntry(dir, name, attrArchive, first, uint32(len(data)), mtime)
}

// mkdir creates directory name in the directory at cluster parent.
func (e *editor) mkdir(parent uint32, name string, mtime int64) (uint32, error) {
	ch, err := e.alloc(1)
	if err != nil {
		return 0, err
	}
	c := ch[0]
	buf := make([]byte, e.g.clusterBytes())
	dotdot := parent
	if parent == e.g.rootClus {
		dotdot = 0
	}
	copy(buf, shortEntry(dotName("."), attrDir, c, 0, mtime))
	copy(buf[dirEntSize:], shortEntry(dotName(".."), attrDir, dotdot, 0, mtime))
	if _, err := e.w.WriteAt(buf, e.off+e.g.clusterOffset(c)); err != nil {
		return 0, err
	}
	if err := e.flushFAT(); err != nil {
		return 0, err
	}
	return c, e.addEntry(parent, name, attrDir, c, 0, mtime)
}

// addEntry adds a long and short entry for name to the directory at
// cluster dir, growing the directory when it has no room.
func (e *editor) addEntry(dir uint32, name string, attr byte, cluster, size uint32, mtime int64) error {
	raw, ch, ents, err := e.dir(dir)
	if err != nil {
		return err
	}
	namer := shortNamer{}
	for i := 0; i*dirEntSize < len(raw) && raw[i*dirEntSize] != 0; i++ {
		var sn [11]byte
		copy(sn[:], raw[i*dirEntSize:])
		namer[sn] = true
	}
	for _, s := range ents {
		if strings.EqualFold(s.Name, name) {
			return fmt.Errorf("%s exists", s.Name)
		}
	}
	sn, long, err := namer.name(name)
	if err != nil {
		return err
	}
	var ent []byte
	if long {
		ent = lfnEntries(name, sn)
	}
	ent = append(ent, shortEntry(sn, attr, cluster, size, mtime)...)
	need := len(ent) / dirEntSize

	at := freeRun(raw, need)
	if at < 0 {
		grow := (int64(need*dirEntSize) + e.g.clusterBytes() - 1) / e.g.clusterBytes()
		if len(raw)+int(grow*e.g.clusterBytes()) > 65536*dirEntSize {
			return errors.New("directory is full (65536 entries)")
		}
		more, err := e.alloc(int(grow))
		if err != nil {
			return err
		}
		le32(e.fat[4*ch[len(ch)-1]:], more[0])
		ch = append(ch, more...)
		raw = append(raw, make([]byte, grow*e.g.clusterBytes())...)
		if err := e.flushFAT(); err != nil {
			return err
		}
		at = freeRun(raw, need)
	}
	end := (at + need) * dirEntSize
	endMarker := raw[at*dirEntSize] == 0 // writing into the free tail
	copy(raw[at*dirEntSize:], ent)
	if endMarker && end < len(raw) {
		raw[end] = 0 // keep the end-of-directory marker after the new entries
	}
	return e.writeDir(raw, ch)
}

// freeRun returns the index of the first run of n free directory slots, or -1.
func freeRun(raw []byte, n int) int {
	run := 0
	for i := 0; i*dirEntSize < len(raw); i++ {
		b := raw[i*dirEntSize]
		if b == 0 {
			if (len(raw)/dirEntSize)-(i-run) >= n {
				return i - run
			}
			return -1
		}
		if b == 0xE5 {
			run++
			if run == n {
				return i - n + 1
			}
			continue
		}
		run = 0
	}
	return -1
}

// writeDir writes a directory's bytes back to its clusters.
func (e *editor) writeDir(raw []byte, ch []uint32) error {
	cb := e.g.clusterBytes()
	for i, c := range ch {
		if _, err := e.w.WriteAt(raw[int64(i)*cb:int64(i+1)*cb], e.off+e.g.clusterOffset(c)); err != nil {
			return err
		}
	}
	return nil
}

// write stores data in newly allocated clusters and returns the first (0
// for empty data).
func (e *editor) write(data []byte) (uint32, error) {
	cb := e.g.clusterBytes()
	n := (int64(len(data)) + cb - 1) / cb
	if n == 0 {
		return 0, nil
	}
	ch, err := e.alloc(int(n))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, cb)
	for i, c := range ch {
		clear(buf)
		copy(buf, data[int64(i)*cb:])
		if _, err := e.w.WriteAt(buf, e.off+e.g.clusterOffset(c)); err != nil {
			return 0, err
		}
	}
	return ch[0], nil
}

// alloc chains n free clusters (first fit) in the in-memory FAT.
func (e *editor) alloc(n int) ([]uint32, error) {
	var ch []uint32
	for c := uint32(2); c <= e.g.clusters+1 && len(ch) < n; c++ {
		if e.next(c) == 0 {
			ch = append(ch, c)
		}
	}
	if len(ch) < n {
		return nil, fmt.Errorf("filesystem full: need %d clusters of %d bytes", n, e.g.clusterBytes())
	}
	for i, c := range ch {
		v := uint32(eoc)
		if i+1 < len(ch) {
			v = ch[i+1]
		}
		le32(e.fat[4*c:], v)
	}
	return ch, nil
}

// flushFAT writes the in-memory FAT to every FAT copy and updates FSInfo
// (and its backup) with the free count and the next free cluster.
func (e *editor) flushFAT() error {
	for i := range e.g.nfats {
		if _, err := e.w.WriteAt(e.fat, e.off+e.g.fatOffset(i)); err != nil {
			return fmt.Errorf("write FAT %d: %w", i+1, err)
		}
	}
	free, nextFree := uint32(0), uint32(0xFFFFFFFF)
	for c := uint32(2); c <= e.g.clusters+1; c++ {
		if e.next(c) == 0 {
			free++
			if nextFree == 0xFFFFFFFF {
				nextFree = c
			}
		}
	}
	info := fsInfo(free, nextFree)
	fsi, backup := get16(e.boot[48:]), get16(e.boot[50:])
	for _, s := range []uint16{fsi, backup + fsi} {
		if s == 0 || uint32(s) >= e.g.reserved || (s != fsi && (backup == 0 || backup == 0xFFFF)) {
			continue
		}
		if _, err := e.w.WriteAt(info, e.off+int64(s)*sectorSize); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	return nil
}
