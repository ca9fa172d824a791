// Package secureboot writes what UEFI Secure Boot checks, in Go: unified
// kernel images (systemd's EFI stub with the kernel, initrd and command
// line as PE sections), Authenticode signatures on PE files, and the EFI
// signature lists and time-based authenticated variables (.auth) that
// enroll PK, KEK and db.
//
// No well-kept Go library fits (checked 2026-12: github.com/foxboron/go-uefi
// is not served by the Go proxy here; go.mozilla.org/pkcs7 and
// github.com/smallstep/pkcs7 sign a content as given, while Authenticode's
// messageDigest covers SpcIndirectDataContent without its outer tag and
// length), so the small subset of PKCS#7 needed is built with cryptobyte.
// Everything runs on the build host; signatures are RSA PKCS#1 v1.5 over
// SHA-256, which is deterministic: same input, same key -> same bytes.
package secureboot

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// peLayout are the offsets of a PE file that Authenticode treats specially.
type peLayout struct {
	checksum     int // offset of OptionalHeader.CheckSum
	certDir      int // offset of the certificate table's data directory entry
	headersEnd   int // SizeOfHeaders
	sections     []peSection
	certOff      int // the certificate table (0: none)
	certSize     int
	numSections  int
	sectionTable int // offset of the first section header
	optHeader    int // offset of the optional header
	magic        uint16
	fileAlign    int
	sectionAlign int
}

type peSection struct {
	name                  string
	virtualAddr, virtSize int
	rawOff, rawSize       int
	characteristics       uint32
}

const (
	pe32Magic     = 0x10b
	pe32PlusMagic = 0x20b
	certDirIndex  = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY
)

// parsePE reads the parts of a PE/COFF image that signing needs. It checks
// every offset against the file, so that a broken input is an error, not a
// panic.
func parsePE(b []byte) (*peLayout, error) {
	u16 := func(off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
	u32 := func(off int) int { return int(binary.LittleEndian.Uint32(b[off:])) }
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, errors.New("not a PE file (no MZ header)")
	}
	peOff := u32(0x3c)
	if peOff < 0 || peOff+24 > len(b) || string(b[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, errors.New("not a PE file (no PE signature)")
	}
	l := &peLayout{}
	coff := peOff + 4
	l.numSections = int(u16(coff + 2))
	optSize := int(u16(coff + 16))
	l.optHeader = coff + 20
	if l.optHeader+optSize > len(b) || optSize < 2 {
		return nil, errors.New("PE optional header truncated")
	}
	l.magic = u16(l.optHeader)
	var dirs int
	switch l.magic {
	case pe32Magic:
		dirs = l.optHeader + 96
	case pe32PlusMagic:
		dirs = l.optHeader + 112
	default:
		return nil, fmt.Errorf("PE optional header magic %#x: want PE32 or PE32+", l.magic)
	}
	if dirs > l.optHeader+optSize {
		return nil, errors.New("PE optional header truncated")
	}
	nDirs := u32(dirs - 4)
	if nDirs <= certDirIndex || dirs+8*nDirs > l.optHeader+optSize {
		return nil, errors.New("PE file has no certificate table directory entry")
	}
	l.checksum = l.optHeader + 64
	l.sectionAlign = u32(l.optHeader + 32)
	l.fileAlign = u32(l.optHeader + 36)
	l.headersEnd = u32(l.optHeader + 60)
	l.certDir = dirs + 8*certDirIndex
	l.certOff, l.certSize = u32(l.certDir), u32(l.certDir+4)
	l.sectionTable = l.optHeader + optSize
	if l.headersEnd > len(b) || l.headersEnd < l.sectionTable+40*l.numSections {
		return nil, errors.New("PE headers truncated")
	}
	if l.fileAlign <= 0 || l.sectionAlign <= 0 || l.fileAlign&(l.fileAlign-1) != 0 || l.sectionAlign&(l.sectionAlign-1) != 0 {
		return nil, fmt.Errorf("PE alignments %#x/%#x: want powers of two", l.fileAlign, l.sectionAlign)
	}
	for i := 0; i < l.numSections; i++ {
		h := l.sectionTable + 40*i
		name := string(b[h : h+8])
		for j := range name {
			if name[j] == 0 {
				name = name[:j]
				break
			}
		}
		s := peSection{name: name, virtSize: u32(h + 8), virtualAddr: u32(h + 12), rawSize: u32(h + 16), rawOff: u32(h + 20),
			characteristics: binary.LittleEndian.Uint32(b[h+36:])}
		if s.rawSize > 0 && (s.rawOff < 0 || s.rawSize < 0 || s.rawOff+s.rawSize > len(b)) {
			return nil, fmt.Errorf("PE section %q lies outside the file", name)
		}
		l.sections = append(l.sections, s)
	}
	if l.certSize != 0 && (l.certOff < l.headersEnd || l.certOff+l.certSize != len(b)) {
		return nil, errors.New("PE certificate table is not at the end of the file")
	}
	return l, nil
}

// ImageHash is the Authenticode SHA-256 of a PE file: the headers without
// the checksum and the certificate table's directory entry, the sections
// in file order, and whatever follows them up to the certificate table.
func ImageHash(b []byte) ([]byte, error) {
	l, err := parsePE(b)
	if err != nil {
		return nil, err
	}
	return l.hash(b), nil
}

func (l *peLayout) hash(b []byte) []byte {
	h := sha256.New()
	h.Write(b[:l.checksum])
	h.Write(b[l.checksum+4 : l.certDir])
	h.Write(b[l.certDir+8 : l.headersEnd])
	secs := append([]peSection(nil), l.sections...)
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].rawOff < secs[j].rawOff })
	end := l.headersEnd
	for _, s := range secs {
		if s.rawSize == 0 {
			continue
		}
		h.Write(b[s.rawOff : s.rawOff+s.rawSize])
		end = max(end, s.rawOff+s.rawSize)
	}
	stop := len(b)
	if l.certSize != 0 {
		stop = l.certOff
	}
	if end < stop {
		h.Write(b[end:stop])
	}
	return h.Sum(nil)
}

// WIN_CERTIFICATE values.
const (
	winCertRevision   = 0x0200
	winCertPKCS       = 0x0002 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
	winCertHeaderSize = 8
)

// Sign returns a copy of the PE file pe signed with s: an existing
// signature is replaced, the file is padded to 8 bytes (the padding is
// hashed, as sbsign and the firmware do), and one WIN_CERTIFICATE with the
// PKCS#7 SignedData is appended and named in the certificate directory.
func Sign(pe []byte, s *Signer) ([]byte, error) {
	l, err := parsePE(pe)
	if err != nil {
		return nil, err
	}
	out := pe
	if l.certSize != 0 {
		out = pe[:l.certOff]
	}
	out = append([]byte(nil), out...)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	binary.LittleEndian.PutUint64(out[l.certDir:], 0)
	if l, err = parsePE(out); err != nil {
		return nil, err
	}
	sig, err := s.authenticode(l.hash(out))
	if err != nil {
		return nil, err
	}
	n := winCertHeaderSize + len(sig)
	padded := (n + 7) &^ 7
	cert := make([]byte, padded)
	binary.LittleEndian.PutUint32(cert[0:], uint32(n))
	binary.LittleEndian.PutUint16(cert[4:], winCertRevision)
	binary.LittleEndian.PutUint16(cert[6:], winCertPKCS)
	copy(cert[8:], sig)
	binary.LittleEndian.PutUint32(out[l.certDir:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[l.certDir+4:], uint32(padded))
	return append(out, cert...), nil
}

// Signatures returns the PKCS#7 blobs of a PE file's certificate table
// (none when it is unsigned).
func Signatures(pe []byte) ([][]byte, error) {
	l, err := parsePE(pe)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	t := pe[l.certOff : l.certOff+l.certSize]
	for len(t) >= winCertHeaderSize {
		n := int(binary.LittleEndian.Uint32(t))
		if n < winCertHeaderSize || n > len(t) {
			return nil, errors.New("PE certificate table: bad WIN_CERTIFICATE length")
		}
		if binary.LittleEndian.Uint16(t[6:]) == winCertPKCS {
			out = append(out, t[winCertHeaderSize:n])
		}
		t = t[min((n+7)&^7, len(t)):]
	}
	return out, nil
}
