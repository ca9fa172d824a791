// Package uboot writes and reads U-Boot legacy images of type "script": the
// boot.scr that U-Boot's `source` command runs on boards booted by U-Boot
// (qemu-armv7, rpi3). The bytes equal those of
//
//	mkimage -A arm -O linux -T script -C none -n NAME -d script.txt boot.scr
//
// with SOURCE_DATE_EPOCH set, so that images stay reproducible.
//
// Layout: a 64-byte big-endian header (magic, header CRC32, timestamp, data
// size, load and entry address, data CRC32, OS, architecture, type,
// compression, 32-byte name), then the data: for scripts a multi-file length
// table (one big-endian uint32 length per part, ended by a 0) and the parts.
package uboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	magic      = 0x27051956
	headerSize = 64
	nameLen    = 32

	osLinux    = 5
	archARM    = 2
	typeScript = 6
	compNone   = 0
)

// Script returns a legacy image of type script holding script, with the given
// name (cut to 32 bytes, as mkimage does) and the epoch as its timestamp
// (stored as 32 bits, as the format does).
func Script(name string, script []byte, epoch int64) []byte {
	data := make([]byte, 8+len(script))
	binary.BigEndian.PutUint32(data, uint32(len(script)))
	copy(data[8:], script)

	b := make([]byte, headerSize, headerSize+len(data))
	be := binary.BigEndian
	be.PutUint32(b[0:], magic)
	be.PutUint32(b[8:], uint32(epoch))
	be.PutUint32(b[12:], uint32(len(data)))
	be.PutUint32(b[24:], crc32.ChecksumIEEE(data))
	b[28], b[29], b[30], b[31] = osLinux, archARM, typeScript, compNone
	copy(b[32:32+nameLen], name)
	be.PutUint32(b[4:], crc32.ChecksumIEEE(b[:headerSize]))
	return append(b, data...)
}

// ParseScript checks a legacy script image (magic, both CRCs, type, no
// compression, length table) and returns its name and the first script part,
// the one U-Boot's `source` runs.
func ParseScript(b []byte) (name string, script []byte, err error) {
	be := binary.BigEndian
	if len(b) < headerSize {
		return "", nil, fmt.Errorf("u-boot image: %d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	if m := be.Uint32(b); m != magic {
		return "", nil, fmt.Errorf("u-boot image: bad magic %#08x, want %#08x", m, magic)
	}
	h := make([]byte, headerSize)
	copy(h, b)
	want := be.Uint32(h[4:])
	clear(h[4:8])
	if got := crc32.ChecksumIEEE(h); got != want {
		return "", nil, fmt.Errorf("u-boot image: header CRC %#08x, header says %#08x", got, want)
	}
	size := be.Uint32(b[12:])
	if uint64(size) > uint64(len(b)-headerSize) {
		return "", nil, fmt.Errorf("u-boot image: data size %d, but only %d bytes follow the header", size, len(b)-headerSize)
	}
	data := b[headerSize : headerSize+int(size)]
	if got, want := crc32.ChecksumIEEE(data), be.Uint32(b[24:]); got != want {
		return "", nil, fmt.Errorf("u-boot image: data CRC %#08x, header says %#08x", got, want)
	}
	if t := b[30]; t != typeScript {
		return "", nil, fmt.Errorf("u-boot image: type %d, want %d (script)", t, typeScript)
	}
	if c := b[31]; c != compNone {
		return "", nil, fmt.Errorf("u-boot image: compression %d, only %d (none) is supported", c, compNone)
	}
	name = string(b[32 : 32+nameLen])
	for i := range len(name) {
		if name[i] == 0 {
			name = name[:i]
			break
		}
	}
	// Length table: uint32 lengths ended by 0; parts follow it, each padded
	// to 4 bytes except the last.
	var lens []uint32
	off := 0
	for {
		if off+4 > len(data) {
			return "", nil, errors.New("u-boot image: length table not terminated")
		}
		l := be.Uint32(data[off:])
		off += 4
		if l == 0 {
			break
		}
		lens = append(lens, l)
	}
	if len(lens) == 0 {
		return "", nil, errors.New("u-boot image: script has no parts")
	}
	if uint64(lens[0]) > uint64(len(data)-off) {
		return "", nil, fmt.Errorf("u-boot image: script part of %d bytes, only %d bytes of data left", lens[0], len(data)-off)
	}
	return name, data[off : off+int(lens[0])], nil
}
