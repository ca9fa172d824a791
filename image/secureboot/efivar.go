package secureboot

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf16"
)

// GUID is an EFI GUID in its text form's field order; Bytes encodes it the
// way EFI stores it (first three fields little-endian).
type GUID struct {
	A    uint32
	B, C uint16
	D    [8]byte
}

// Bytes is the 16-byte EFI encoding of g.
func (g GUID) Bytes() []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b, g.A)
	binary.LittleEndian.PutUint16(b[4:], g.B)
	binary.LittleEndian.PutUint16(b[6:], g.C)
	copy(b[8:], g.D[:])
	return b
}

func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", g.A, g.B, g.C, g.D[:2], g.D[2:])
}

var (
	// certX509GUID is EFI_CERT_X509_GUID, the type of a signature list of certificates.
	certX509GUID = GUID{0xa5c059a1, 0x94e4, 0x4aa7, [8]byte{0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}}
	// certPKCS7GUID is EFI_CERT_TYPE_PKCS7_GUID (WIN_CERTIFICATE_UEFI_GUID.CertType).
	certPKCS7GUID = GUID{0x4aafd29d, 0x68df, 0x49ee, [8]byte{0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7}}
	// GlobalVariable is EFI_GLOBAL_VARIABLE, the vendor of PK and KEK.
	GlobalVariable = GUID{0x8be4df61, 0x93ca, 0x11d2, [8]byte{0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}}
	// ImageSecurityDatabase is EFI_IMAGE_SECURITY_DATABASE_GUID, the vendor of db.
	ImageSecurityDatabase = GUID{0xd719b2cb, 0x3d3a, 0x4596, [8]byte{0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f}}
)

// Var names a Secure Boot key variable.
type Var struct {
	Name   string
	Vendor GUID
}

// The three variables keygen writes .auth files for; systemd-boot writes
// them db, KEK, PK (PK last: that ends setup mode).
var (
	PK  = Var{"PK", GlobalVariable}
	KEK = Var{"KEK", GlobalVariable}
	DB  = Var{"db", ImageSecurityDatabase}
)

// authAttributes are NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS |
// TIME_BASED_AUTHENTICATED_WRITE_ACCESS, as systemd-boot sets the keys.
const authAttributes = 0x01 | 0x02 | 0x04 | 0x20

// winCertEFIGUID is WIN_CERT_TYPE_EFI_GUID.
const winCertEFIGUID = 0x0ef1

// SignatureList is an EFI_SIGNATURE_LIST of one X.509 certificate owned by owner.
func SignatureList(cert *x509.Certificate, owner GUID) []byte {
	size := 16 + len(cert.Raw)
	b := certX509GUID.Bytes()
	b = binary.LittleEndian.AppendUint32(b, uint32(28+size)) // SignatureListSize
	b = binary.LittleEndian.AppendUint32(b, 0)               // SignatureHeaderSize
	b = binary.LittleEndian.AppendUint32(b, uint32(size))    // SignatureSize
	b = append(b, owner.Bytes()...)
	return append(b, cert.Raw...)
}

// efiTime is EFI_TIME of t (UTC; the pad, nanosecond, zone and daylight
// fields zero, as authenticated variables require).
func efiTime(t time.Time) []byte {
	t = t.UTC()
	b := binary.LittleEndian.AppendUint16(nil, uint16(t.Year()))
	b = append(b, byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0)
	return append(b, make([]byte, 8)...)
}

// AuthVar is a time-based authenticated write of v with data (an EFI
// signature list): EFI_VARIABLE_AUTHENTICATION_2 (timestamp + PKCS#7 by
// s over name, vendor, attributes, timestamp and data), then data — the
// .auth file format of efitools' sign-efi-sig-list and sbvarsign that
// systemd-boot enrolls from /loader/keys/NAME/.
func AuthVar(v Var, data []byte, ts time.Time, s *Signer) ([]byte, error) {
	stamp := efiTime(ts)
	var msg []byte
	for _, u := range utf16.Encode([]rune(v.Name)) {
		msg = binary.LittleEndian.AppendUint16(msg, u)
	}
	msg = append(msg, v.Vendor.Bytes()...)
	msg = binary.LittleEndian.AppendUint32(msg, authAttributes)
	msg = append(msg, stamp...)
	msg = append(msg, data...)
	sig, err := s.detached(msg)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), stamp...)
	out = binary.LittleEndian.AppendUint32(out, uint32(8+16+len(sig))) // WIN_CERTIFICATE.dwLength
	out = binary.LittleEndian.AppendUint16(out, winCertRevision)
	out = binary.LittleEndian.AppendUint16(out, winCertEFIGUID)
	out = append(out, certPKCS7GUID.Bytes()...)
	out = append(out, sig...)
	return append(out, data...), nil
}
