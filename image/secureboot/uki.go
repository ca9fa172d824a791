package secureboot

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Section is a named PE section added to the EFI stub.
type Section struct {
	Name string // at most 8 bytes: .osrel, .cmdline, .initrd, .linux
	Data []byte
}

// Section characteristics.
const (
	scnCode       = 0x00000020
	scnData       = 0x00000040
	scnExecute    = 0x20000000
	scnRead       = 0x40000000
	dataSection   = scnData | scnRead
	kernelSection = scnCode | scnRead | scnExecute
)

// UKI assembles a unified kernel image the way systemd's ukify does: the
// stub's sections, then .osrel, .cmdline, .initrd and .linux (last: a
// kernel run in place may use memory up to its setup header's init_size
// beyond its file size, so its virtual size is at least that), each at the
// next file- and section-aligned offset. The stub's own signature, COFF
// symbol table and trailing bytes are dropped. The result is unsigned.
func UKI(stub []byte, osrel, cmdline string, initrd, kernel []byte) ([]byte, error) {
	return AddSections(stub, []Section{
		{".osrel", []byte(osrel)},
		{".cmdline", []byte(cmdline)},
		{".initrd", initrd},
		{".linux", kernel},
	})
}

// AddSections appends sections to the PE image pe (see UKI).
func AddSections(pe []byte, add []Section) ([]byte, error) {
	l, err := parsePE(pe)
	if err != nil {
		return nil, fmt.Errorf("EFI stub: %w", err)
	}
	if l.sectionTable+40*(l.numSections+len(add)) > l.headersEnd {
		return nil, fmt.Errorf("EFI stub: no room in its headers for %d more section headers", len(add))
	}
	fileEnd, virtEnd := l.headersEnd, l.headersEnd
	for _, s := range l.sections {
		fileEnd = max(fileEnd, s.rawOff+s.rawSize)
		virtEnd = max(virtEnd, s.virtualAddr+max(s.virtSize, s.rawSize))
	}
	out := append([]byte(nil), pe[:fileEnd]...)
	binary.LittleEndian.PutUint64(out[l.certDir:], 0)        // no signature
	binary.LittleEndian.PutUint64(out[l.optHeader-20+8:], 0) // PointerToSymbolTable, NumberOfSymbols
	binary.LittleEndian.PutUint32(out[l.checksum:], 0)       // stale: the firmware does not check it
	var sizeOfCode, sizeOfData uint32
	for i, s := range add {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("section name %q: want 1 to 8 bytes", s.Name)
		}
		for len(out)%l.fileAlign != 0 {
			out = append(out, 0)
		}
		va := alignUp(virtEnd, l.sectionAlign)
		vsize := len(s.Data)
		flags := uint32(dataSection)
		if s.Name == ".linux" {
			flags = kernelSection
			vsize = max(vsize, kernelInitSize(s.Data))
		}
		raw := alignUp(len(s.Data), l.fileAlign)
		h := l.sectionTable + 40*(l.numSections+i)
		hdr := out[h : h+40]
		clear(hdr)
		copy(hdr, s.Name)
		binary.LittleEndian.PutUint32(hdr[8:], uint32(vsize))
		binary.LittleEndian.PutUint32(hdr[12:], uint32(va))
		binary.LittleEndian.PutUint32(hdr[16:], uint32(raw))
		binary.LittleEndian.PutUint32(hdr[20:], uint32(len(out)))
		binary.LittleEndian.PutUint32(hdr[36:], flags)
		out = append(out, s.Data...)
		out = append(out, make([]byte, raw-len(s.Data))...)
		virtEnd = va + vsize
		if flags&scnCode != 0 {
			sizeOfCode += uint32(raw)
		} else {
			sizeOfData += uint32(raw)
		}
	}
	if virtEnd > 1<<32-1 || len(out) > 1<<32-1 {
		return nil, errors.New("unified kernel image larger than 4 GiB")
	}
	coff := l.optHeader - 20
	binary.LittleEndian.PutUint16(out[coff+2:], uint16(l.numSections+len(add)))
	le := binary.LittleEndian
	le.PutUint32(out[l.optHeader+4:], le.Uint32(out[l.optHeader+4:])+sizeOfCode)
	le.PutUint32(out[l.optHeader+8:], le.Uint32(out[l.optHeader+8:])+sizeOfData)
	le.PutUint32(out[l.optHeader+56:], uint32(alignUp(virtEnd, l.sectionAlign))) // SizeOfImage
	return out, nil
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// kernelInitSize is an x86 bzImage's setup header init_size (the memory
// the kernel needs from its load address), 0 for other kernels.
func kernelInitSize(k []byte) int {
	if len(k) < 0x264 || string(k[0x202:0x206]) != "HdrS" {
		return 0
	}
	return int(binary.LittleEndian.Uint32(k[0x260:]))
}

// SectionData returns the raw data of the named section of a PE file
// (trimmed to its virtual size), or nil when it has none.
func SectionData(pe []byte, name string) ([]byte, error) {
	l, err := parsePE(pe)
	if err != nil {
		return nil, err
	}
	for _, s := range l.sections {
		if s.name == name {
			return pe[s.rawOff : s.rawOff+min(s.rawSize, max(s.virtSize, 0))], nil
		}
	}
	return nil, nil
}
