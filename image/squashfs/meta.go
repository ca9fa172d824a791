package squashfs

import "encoding/binary"

const (
	metaSize       = 8192    // uncompressed bytes per metadata block
	metaStored     = 0x8000  // metadata header bit: block stored uncompressed
	dataStored     = 1 << 24 // data/fragment size bit: block stored uncompressed
	superblockSize = 96
)

// metaWriter builds one metadata table (inodes, directories, ids, ...) in
// memory: a stream cut into 8 KiB blocks, each compressed as it fills so
// that the on-disk position of every byte already written is known.
type metaWriter struct {
	comp   compressor
	buf    []byte   // the block being filled
	out    []byte   // finished blocks, each with its 2-byte header
	starts []uint32 // offset of each finished block in out
	ulen   int64    // uncompressed bytes written
	err    error
}

func newMeta(c compressor) *metaWriter { return &metaWriter{comp: c, buf: make([]byte, 0, metaSize)} }

// ref returns the reference of the next byte: the offset of its block in the
// table (upper bits) and its offset in the uncompressed block (low 16 bits).
func (m *metaWriter) ref() uint64 { return uint64(len(m.out))<<16 | uint64(len(m.buf)) }

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := copy(m.buf[len(m.buf):metaSize], p)
		m.buf = m.buf[:len(m.buf)+n]
		p = p[n:]
		m.ulen += int64(n)
		if len(m.buf) == metaSize {
			m.flush()
		}
	}
}

func (m *metaWriter) flush() {
	c, err := m.comp.compress(nil, m.buf)
	if err != nil && m.err == nil {
		m.err = err
	}
	hdr := uint16(len(c))
	if c == nil {
		c, hdr = m.buf, uint16(len(m.buf))|metaStored
	}
	m.starts = append(m.starts, uint32(len(m.out)))
	m.out = binary.LittleEndian.AppendUint16(m.out, hdr)
	m.out = append(m.out, c...)
	m.buf = m.buf[:0]
}

// finish flushes the last partial block and returns the table.
func (m *metaWriter) finish() ([]byte, error) {
	if len(m.buf) > 0 {
		m.flush()
	}
	return m.out, m.err
}

// le appends little-endian values of fixed-size integer types.
type le []byte

func (b le) u16(v uint16) le { return binary.LittleEndian.AppendUint16(b, v) }
func (b le) u32(v uint32) le { return binary.LittleEndian.AppendUint32(b, v) }
func (b le) u64(v uint64) le { return binary.LittleEndian.AppendUint64(b, v) }
